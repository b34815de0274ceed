import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ArgumentError } from '../../errors.ts';
import { type TarEntry, TarReader } from './tar.ts';
import { type WebDatasetSampleInput, encodeWebDatasetSample, encodeWebDatasetShard, writeWebDatasetShard } from './writer.ts';

async function listing(bytes: Uint8Array): Promise<{ name: string; data: string; entry: TarEntry }[]> {
  const tar = new TarReader(bytes, { shard: 't' });
  const out = [];
  for (let e = await tar.next(); e !== null; e = await tar.next()) out.push({ name: e.name, data: (await tar.readData()).toString('utf8'), entry: e });
  return out;
}

function withTempDir(fn: (dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'shardline-wds-writer-'));
    try {
      await fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

test('encodes fields as WebDataset does: bytes, UTF-8 strings, JSON, decimal class labels; sorted; _ fields skipped', async () => {
  const members = encodeWebDatasetSample({
    __key__: 'a/000',
    txt: 'héllo',
    jpg: new Uint8Array([1, 2, 3]),
    f32: new Float32Array([1]),
    json: { w: 640, tags: ['x'] },
    'meta.json': [1, null],
    cls: 7,
    id: 12345678901234567890n,
    _private: 'skipped',
  });
  assert.deepEqual(
    members.map((m) => [m.name, m.data.toString('latin1')]),
    [
      ['a/000.cls', '7'],
      ['a/000.f32', Buffer.from(new Float32Array([1]).buffer).toString('latin1')],
      ['a/000.id', '12345678901234567890'],
      ['a/000.jpg', '\x01\x02\x03'],
      ['a/000.json', '{"w":640,"tags":["x"]}'],
      ['a/000.meta.json', '[1,null]'],
      ['a/000.txt', Buffer.from('héllo').toString('latin1')],
    ],
  );
});

test('refuses values it cannot encode, naming the sample and field', () => {
  const cases: [WebDatasetSampleInput, RegExp][] = [
    [{ __key__: 'a', jpg: { x: 1 } }, /sample "a" field "jpg": cannot write a Object under the suffix "jpg"/],
    [{ __key__: 'a', cls: 1.5 }, /field "cls": cannot write a number/],
    [{ __key__: 'a', txt: 3 }, /field "txt"/],
    [{ __key__: 'a', json: 10n }, /field "json": cannot be written as JSON/],
    [{ __key__: 'a', json: undefined }, /field "json": a undefined cannot be written as JSON/],
    [{ __key__: 'a', txt: 'x\ud800' }, /lone surrogate/],
    [{ __key__: 'a', _only: 'x' }, /has no fields/],
    [{ __key__: 'a.b', jpg: 'x' }, /__key__: "a\.b" is refused/],
    [{ __key__: 'a', JPG: 'x' }, /lowercase/],
  ];
  for (const [sample, pattern] of cases) {
    assert.throws(() => encodeWebDatasetSample(sample), (e: unknown) => e instanceof ArgumentError && pattern.test(e.message), pattern.source);
  }
  assert.throws(() => encodeWebDatasetSample({ __key__: 3 } as unknown as WebDatasetSampleInput), /__key__: must be a string/);
  assert.throws(() => encodeWebDatasetSample(null as unknown as WebDatasetSampleInput), ArgumentError);
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  assert.throws(() => encodeWebDatasetSample({ __key__: 'a', json: cyclic }), /cannot be written as JSON/);
});

test('deterministic: the same samples give the same bytes; headers are fixed (mode 0444, uid 0, epoch mtime)', async () => {
  const samples = (): WebDatasetSampleInput[] => [
    { __key__: '000', txt: 'a', cls: 1 },
    { __key__: '001', txt: 'b', cls: 2 },
  ];
  const a = await encodeWebDatasetShard(samples());
  const b = await encodeWebDatasetShard(samples());
  assert.ok(a.equals(b));
  const header = a.subarray(0, 512);
  assert.equal(header.subarray(100, 107).toString('latin1'), '000444 ');
  assert.equal(header.subarray(108, 115).toString('latin1'), '000000 ');
  assert.equal(header.subarray(136, 147).toString('latin1'), '00000000000');
  assert.equal(header.subarray(265, 265 + 64).toString('latin1'), '\0'.repeat(64));
  const c = await encodeWebDatasetShard(samples(), { mtime: new Date('2024-01-01T00:00:00Z') });
  assert.ok(!a.equals(c));
  assert.deepEqual((await listing(a)).map((m) => [m.name, m.data]), [['000.cls', '1'], ['000.txt', 'a'], ['001.cls', '2'], ['001.txt', 'b']]);
});

test('long and non-ASCII names get pax headers and read back whole', async () => {
  const long = `${'d'.repeat(60)}/${'e'.repeat(60)}/${'f'.repeat(120)}`;
  const bytes = await encodeWebDatasetShard([{ __key__: long, txt: 'l' }, { __key__: 'ünï/çödé', txt: 'u' }, { __key__: `${'s'.repeat(90)}/x`, txt: 's' }]);
  const got = await listing(bytes);
  assert.deepEqual(got.map((m) => m.name), [`${long}.txt`, 'ünï/çödé.txt', `${'s'.repeat(90)}/x.txt`]);
  // The pax header precedes the member's own header: header < offset - 512.
  assert.ok(got[0]!.entry.header < got[0]!.entry.offset - 512);
  // A name that fits ustar with a prefix split needs no extension header.
  assert.equal(got[2]!.entry.header, got[2]!.entry.offset - 512);
});

test('refuses a sample with the key of the one before it, and accepts async iterables', async () => {
  await assert.rejects(
    encodeWebDatasetShard([{ __key__: 'a', txt: '1' }, { __key__: 'a', cls: 1 }]),
    (e: unknown) => e instanceof ArgumentError && /samples\[1\]: has the key "a" of the sample before it/.test(e.message),
  );
  async function* source(): AsyncGenerator<WebDatasetSampleInput> {
    yield { __key__: 'a', txt: '1' };
    yield { __key__: 'b', txt: '2' };
    yield { __key__: 'a', txt: '3' };
  }
  const got = await listing(await encodeWebDatasetShard(source()));
  assert.deepEqual(got.map((m) => m.name), ['a.txt', 'b.txt', 'a.txt']);
  await assert.rejects(encodeWebDatasetShard(3 as unknown as WebDatasetSampleInput[]), ArgumentError);
  await assert.rejects(encodeWebDatasetShard([], { mtime: new Date(Number.NaN) }), /mtime/);
});

test('an empty shard is a valid, empty tar', async () => {
  const bytes = await encodeWebDatasetShard([]);
  assert.equal(bytes.length, 1024);
  assert.deepEqual(await listing(bytes), []);
});

test(
  'writeWebDatasetShard writes atomically, reports size, count and sha256, and can write the index',
  withTempDir(async (dir) => {
    const file = path.join(dir, 'shard-000.tar');
    const written = await writeWebDatasetShard(file, [{ __key__: 'a', txt: 'x' }, { __key__: 'b', bin: new Uint8Array(1000) }], { index: true });
    const bytes = readFileSync(file);
    assert.equal(written.bytes, bytes.length);
    assert.equal(written.samples, 2);
    assert.equal(written.sha256, createHash('sha256').update(bytes).digest('hex'));
    assert.ok(existsSync(`${file}.idx.json`));
    assert.deepEqual(readdirSync(dir).sort(), ['shard-000.tar', 'shard-000.tar.idx.json']);

    // A failing sample leaves neither the shard nor a temporary file behind.
    const bad = path.join(dir, 'bad.tar');
    await assert.rejects(writeWebDatasetShard(bad, [{ __key__: 'a', txt: 'x' }, { __key__: 'a.b', txt: 'y' }]), ArgumentError);
    assert.deepEqual(readdirSync(dir).sort(), ['shard-000.tar', 'shard-000.tar.idx.json']);

    const controller = new AbortController();
    async function* slow(): AsyncGenerator<WebDatasetSampleInput> {
      yield { __key__: 'a', txt: 'x' };
      controller.abort();
      yield { __key__: 'b', txt: 'y' };
    }
    await assert.rejects(writeWebDatasetShard(path.join(dir, 'aborted.tar'), slow(), { signal: controller.signal }), { name: 'AbortError' });
    assert.deepEqual(readdirSync(dir).sort(), ['shard-000.tar', 'shard-000.tar.idx.json']);
  }),
);

test('a large member streams through with backpressure', async () => {
  const big = new Uint8Array(5 * 1024 * 1024).fill(7);
  const bytes = await encodeWebDatasetShard([{ __key__: 'big', bin: big }, { __key__: 'small', txt: 's' }]);
  const got = await listing(bytes);
  assert.equal(got[0]!.entry.size, big.length);
  assert.equal(got[1]!.data, 's');
});
