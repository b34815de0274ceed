import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { FormatError, ShardlineError } from '../../errors.ts';
import { archive, chunked, header, longName, member, pax } from './test-tar.ts';
import { BLOCK, MAX_EXTENSION_BYTES, type TarEntry, TarReader, decodeHeaderBlock } from './tar.ts';

async function entries(bytes: Uint8Array, options: { totalBytes?: number; chunk?: number; requireEnd?: boolean } = {}): Promise<(TarEntry & { data: string })[]> {
  const source = options.chunk === undefined ? bytes : chunked(bytes, options.chunk);
  const tar = new TarReader(source, {
    shard: 'test.tar',
    ...(options.totalBytes !== undefined && { totalBytes: options.totalBytes }),
    ...(options.requireEnd !== undefined && { requireEnd: options.requireEnd }),
  });
  const out: (TarEntry & { data: string })[] = [];
  for (let e = await tar.next(); e !== null; e = await tar.next()) {
    out.push({ ...e, data: e.type === 'file' ? (await tar.readData()).toString('utf8') : '' });
  }
  return out;
}

async function rejects(bytes: Uint8Array, pattern: RegExp, options: { totalBytes?: number; chunk?: number } = {}): Promise<void> {
  await assert.rejects(entries(bytes, options), (e: unknown) => {
    assert.ok(e instanceof FormatError, `expected FormatError, got ${String(e)}`);
    assert.match(e.message, /^test\.tar: /);
    assert.match(e.message, pattern);
    return true;
  });
}

test('reads names, types, offsets and data of ustar entries, whatever the chunking', async () => {
  const tar = archive(member('a/', '', { type: '5' }), member('a/x.txt', 'hello'), member('a/y.bin', 'z'.repeat(600)));
  for (const chunk of [undefined, 1, 7, 512, 100_000]) {
    const got = await entries(tar, chunk === undefined ? {} : { chunk });
    assert.deepEqual(
      got.map(({ name, type, header: h, offset, size }) => [name, type, h, offset, size]),
      [
        ['a/', 'directory', 0, 512, 0],
        ['a/x.txt', 'file', 512, 1024, 5],
        ['a/y.bin', 'file', 1536, 2048, 600],
      ],
    );
    assert.equal(got[2]!.data, 'z'.repeat(600));
  }
});

test('applies the ustar prefix, pax path and size, and GNU long names; header points at the first extension block', async () => {
  const long = `${'d'.repeat(120)}/x.jpg`;
  const tar = archive(
    member('name.txt', 'p', { prefix: 'pre/fix' }),
    pax({ path: 'ünïcode/é.txt', mtime: '1.5' }),
    member('PaxHeaders/placeholder', 'u'),
    longName(long),
    member(long.slice(0, 100), 'l', { magic: 'gnu' }),
    pax({ size: '3' }),
    member('sized.txt', 'abc', { size: 0 }),
  );
  const got = await entries(tar);
  assert.deepEqual(
    got.map((e) => [e.name, e.header, e.offset, e.data]),
    [
      ['pre/fix/name.txt', 0, 512, 'p'],
      ['ünïcode/é.txt', 1024, 2560, 'u'],
      [long, 3072, 4608, 'l'],
      ['sized.txt', 5120, 6656, 'abc'],
    ],
  );
});

test('a GNU header ignores the prefix field; v7 headers and signed checksums are read', async () => {
  const gnu = header({ name: 'g.txt', magic: 'gnu', size: 1 });
  gnu.write('junk', 345, 'latin1');
  // Re-checksum after the edit.
  gnu.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of gnu) sum += b;
  gnu.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  const got = await entries(archive(gnu, Buffer.from('1'), Buffer.alloc(511), member('v7.txt', 'v', { magic: 'v7', type: 0 }), member('é.txt', 's', { checksum: 'signed' })));
  assert.deepEqual(got.map((e) => [e.name, e.type, e.data]), [['g.txt', 'file', '1'], ['v7.txt', 'file', 'v'], ['é.txt', 'file', 's']]);
});

test('reads base-256 sizes and treats a NUL-type entry ending in / as a directory, unknown types as data-carrying', async () => {
  const size = Buffer.alloc(12);
  size[0] = 0x80;
  size[11] = 5;
  const got = await entries(archive(member('b.txt', 'fives', { size }), member('old/', '', { type: 0 }), member('vol', 'label', { type: 'V' })));
  assert.deepEqual(got.map((e) => [e.name, e.type, e.size, e.data]), [['b.txt', 'file', 5, 'fives'], ['old/', 'directory', 0, ''], ['vol', 'other', 5, '']]);
});

test('the archive ends at the first zero block; bytes after it are ignored', async () => {
  const got = await entries(Buffer.concat([member('a.txt', 'a'), Buffer.alloc(BLOCK), Buffer.from('trailing garbage')]));
  assert.deepEqual(got.map((e) => e.name), ['a.txt']);
});

test('a skipped entry is skipped with its data; readData after next only', async () => {
  const tar = new TarReader(archive(member('a.txt', 'aaaa'), member('b.txt', 'bb')), { shard: 't' });
  assert.equal((await tar.next())?.name, 'a.txt');
  const b = await tar.next();
  assert.equal(b?.name, 'b.txt');
  assert.equal((await tar.readData()).toString(), 'bb');
  await assert.rejects(tar.readData(), /right after next/);
  assert.equal(await tar.next(), null);
  assert.equal(await tar.next(), null);
});

test('hostile headers are FormatErrors naming the shard and offset', async () => {
  const base = member('a.txt', 'a');
  await rejects(archive(base, member('b.txt', 'b', { checksum: 'bad' })), /header at offset 1024: checksum .* corrupt, compressed, or not a tar/);
  await rejects(gzipSync(archive(member('r.bin', randomBytes(2000)))), /checksum .*compressed/);
  await rejects(archive(member('x', '', { size: Buffer.from('00000001x00\0', 'latin1') })), /the size is not an octal number/);
  await rejects(archive(member('x', '', { size: Buffer.from('12 34\0\0\0\0\0\0\0', 'latin1') })), /not an octal number/);
  const negative = Buffer.alloc(12, 0xff);
  await rejects(archive(header({ name: 'neg', size: negative })), /the size is negative/);
  const huge = Buffer.alloc(12, 0xff);
  huge[0] = 0x80;
  await rejects(archive(header({ name: 'huge', size: huge })), /the size \d+ is too large/);
  const marker = Buffer.alloc(12);
  marker[0] = 0x90;
  await rejects(archive(header({ name: 'm', size: marker })), /invalid base-256 marker/);
  await rejects(archive(header({ name: 'x', nameBytes: Buffer.from([0x61, 0xff, 0x2e, 0x74]) })), /the name is not valid UTF-8/);
});

test('unsafe member names are refused, whichever header carries them', async () => {
  await rejects(archive(member('../evil.txt', 'x')), /member "\.\.\/evil\.txt" \(header at offset 0\) is refused: it has a '\.\.' segment/);
  await rejects(archive(member('a/../../b.txt', 'x')), /'\.\.' segment/);
  await rejects(archive(member('/etc/passwd.txt', 'x')), /absolute/);
  await rejects(archive(member('a\\b.txt', 'x')), /backslash/);
  await rejects(archive(pax({ path: 'a\0b.txt' }), member('p', 'x')), /NUL/);
  await rejects(archive(longName('../../x.jpg'), member('x', 'x', { magic: 'gnu' })), /'\.\.' segment/);
  await rejects(archive(longName('x'.repeat(5000)), member('x', 'x', { magic: 'gnu' })), /GNU long name .* over the limit/);
  // Unsafe names are refused on every entry, not only on members WebDataset would read.
  await rejects(archive(member('../', '', { type: '5' })), /'\.\.' segment/);
});

test('truncation anywhere is a FormatError', async () => {
  const full = archive(member('a.txt', 'a'.repeat(700)), member('b.txt', 'b'));
  await rejects(full.subarray(0, 300), /truncated: the header at offset 0 has 300 of 512 bytes/);
  await rejects(full.subarray(0, 900), /truncated: member "a\.txt" declares 700 bytes at offset 512 but the shard ends at 900/);
  await rejects(full.subarray(0, 1300), /truncated: member "a\.txt" needs .* but the shard ends at 1300/);
  await rejects(full.subarray(0, 2048), /truncated: member "b\.txt" declares 1 bytes at offset 2048 but the shard ends at 2048/);
  await rejects(full.subarray(0, 2560), /truncated: the shard ends at offset 2560 without an end-of-archive block/);
  // The same through a stream of small chunks.
  await rejects(full.subarray(0, 900), /truncated/, { chunk: 64 });
  // Known total size: a member past the end is refused before reading.
  await rejects(full.subarray(0, 900), /member "a\.txt" \(header at offset 0\) declares 700 bytes at offset 512, past the end of the 900-byte shard/, {
    totalBytes: 900,
  });
});

test('extension headers: oversized, malformed, dangling, global path, sparse and multi-volume are refused', async () => {
  await rejects(archive(header({ name: 'big', type: 'x', size: MAX_EXTENSION_BYTES + 1 })), /extension header 'x' at offset 0 is 1048577 bytes, over the limit/);
  await rejects(archive(member('p', '5 a=b\n', { type: 'x' }), member('f', 'x')), /record at offset 0 has a bad length 5/);
  await rejects(archive(member('p', 'abc', { type: 'x' }), member('f', 'x')), /does not start with "<length> "/);
  await rejects(archive(member('p', '6 ab\n\n', { type: 'x' }), member('f', 'x')), /bad length|no "key=value"/);
  await rejects(archive(member('p', '7 =abc\n', { type: 'x' }), member('f', 'x')), /no "key=value"/);
  await rejects(archive(pax({ size: '-1' }), member('f', 'x')), /size "-1" is not a non-negative integer/);
  await rejects(archive(pax({ size: '99999999999999999' }), member('f', 'x')), /is not a non-negative integer/);
  await rejects(archive(pax({ path: 'x.txt' })), /extension header at offset 0 is followed by no entry/);
  await rejects(archive(pax({ path: 'x.txt' }, 'g'), member('f', 'x')), /global header .* refused/);
  await rejects(archive(pax({ 'GNU.sparse.major': '1' }), member('f', 'x')), /sparse/);
  await rejects(archive(member('s', 'x', { type: 'S' })), /sparse/);
  await rejects(archive(member('m', 'x', { type: 'M' })), /multi-volume/);
  await rejects(archive(member('d/', 'data', { type: '5' })), /member "d\/" .* is a directory \(type '5'\) but declares 4 bytes of data/);
  await rejects(archive(member('l', 'target', { type: '2' })), /is a symlink/);
  // A benign global header (git archive writes one) and NUL-padded pax records are fine.
  const ok = await entries(archive(pax({ comment: 'abc123' }, 'g'), member('p', Buffer.concat([Buffer.from('12 path=a.b\n'), Buffer.alloc(4)]), { type: 'x' }), member('f', 'x')));
  assert.deepEqual(ok.map((e) => e.name), ['a.b']);
});

test('decodeHeaderBlock rejects a block of the wrong size', () => {
  assert.throws(() => decodeHeaderBlock('s', new Uint8Array(100), 0), FormatError);
});

test('aborting stops the read with an AbortError', async () => {
  const controller = new AbortController();
  controller.abort();
  const tar = new TarReader(archive(member('a.txt', 'a')), { shard: 't', signal: controller.signal });
  await assert.rejects(tar.next(), { name: 'AbortError' });
});

test('a source of the wrong kind is an ArgumentError', async () => {
  assert.throws(() => new TarReader('nope' as unknown as Uint8Array, { shard: 't' }), { name: 'ArgumentError' });
  async function* strings(): AsyncGenerator<string> {
    yield 'abc';
  }
  const tar = new TarReader(strings() as unknown as AsyncIterable<Uint8Array>, { shard: 't' });
  await assert.rejects(tar.next(), { name: 'ArgumentError' });
});

test('property: corrupting any bytes of a tar gives entries or a FormatError, never another error', async () => {
  const original = archive(
    member('a/000.jpg', 'x'.repeat(300)),
    pax({ path: 'a/000.json' }),
    member('p', '{}'),
    longName(`${'l'.repeat(110)}.txt`),
    member('l', 'long', { magic: 'gnu' }),
    member('a/001.cls', '7'),
  );
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.tuple(fc.nat(original.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
      fc.option(fc.nat(original.length), { nil: undefined }),
      async (edits, cut) => {
        const bytes = Buffer.from(original);
        for (const [at, value] of edits) bytes[at] = value;
        const input = cut === undefined ? bytes : bytes.subarray(0, cut);
        try {
          const got = await entries(input, { totalBytes: input.length });
          for (const e of got) assert.ok(e.offset + e.size <= input.length);
        } catch (e) {
          assert.ok(e instanceof ShardlineError && e.code === 'ERR_FORMAT', `unexpected ${String(e)}`);
        }
      },
    ),
    { numRuns: 300 },
  );
});
