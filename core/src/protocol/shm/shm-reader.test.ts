/** The trainer's reader against hostile, stale and forged descriptors and tampered segment files. */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, open, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { ArgumentError, FormatError } from '../../errors.ts';
import type { SegmentDescriptor } from './descriptor.ts';
import { encodeHeader, HEADER_BYTES, SlotState } from './segment-file.ts';
import { currentOwner } from './owner.ts';
import { ShmReader, StaleDescriptorError } from './shm-reader.ts';
import { ShmRing } from './shm-ring.ts';

let dir: string;
let ring: ShmRing;
let good: SegmentDescriptor;
const readers: ShmReader[] = [];
/** A reader closed after the file's tests (it keeps segment files open between reads). */
const reader = (): ShmReader => {
  const r = new ShmReader({ job: 'mnist', rank: 0, directory: dir });
  readers.push(r);
  return r;
};
after(() => Promise.all(readers.map((r) => r.close())));

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'shm-reader-'));
  ring = await ShmRing.create({ job: 'mnist', rank: 0, slots: 2, slotBytes: 64, directory: dir, checkSpace: false, ringId: 'r1' });
  good = await ring.write(Buffer.from('the batch'));
});
after(async () => {
  await ring.close();
  await rm(dir, { recursive: true, force: true });
});

const isFormat = (pattern: RegExp) => (e: unknown) => e instanceof FormatError && pattern.test(e.message);

test('the reader reads the batch of a good descriptor, also from its JSON form', async () => {
  assert.equal((await reader().read(good)).toString(), 'the batch');
  assert.equal((await reader().read(JSON.parse(JSON.stringify(good)))).toString(), 'the batch');
});

test('malformed descriptors are FormatErrors naming the field', async () => {
  const r = reader();
  const cases: [unknown, RegExp][] = [
    [null, /must be an object, got null/],
    [[1], /must be an object, got an array/],
    ['x', /must be an object/],
    [{ ...good, extra: 1 }, /unknown field "extra"/],
    [{ ...good, slot: -1 }, /slot must be an integer in \[0, 1023\], got -1/],
    [{ ...good, slot: 1.5 }, /slot must be an integer/],
    [{ ...good, slot: '0' }, /slot must be an integer.*got "0"/],
    [{ ...good, generation: 0 }, /generation must be an integer in \[1,/],
    [{ ...good, offset: -5 }, /offset must be an integer in \[128,/],
    [{ ...good, offset: 0 }, /offset must be an integer in \[128,/],
    [{ ...good, length: 2 ** 40 }, /length must be an integer in \[0, 4294967295\]/],
    [{ ...good, length: Number.NaN }, /length must be an integer/],
    [{ ...good, checksum: -1 }, /checksum must be an integer/],
    [{ ...good, ring: '../../etc/passwd' }, /ring must be a name shardline-<job>-<rank>-<ringId>/],
    [{ ...good, ring: 'shardline-mnist-0-r1/../x' }, /ring must be a name/],
    [{ ...good, ring: 'shardline-mnist-0-R1' }, /ring must be a name/],
    [{ ...good, ring: 'shardline-mnist-0-r1\0' }, /ring must be a name/],
    [{ ...good, ring: 7 }, /ring must be a name/],
    [{ ...good, ring: 'shardline-other-0-r1' }, /ring "shardline-other-0-r1" is not of job mnist rank 0/],
    [{ ...good, ring: 'shardline-mnist-1-r1' }, /is not of job mnist rank 0/],
  ];
  for (const [descriptor, pattern] of cases) await assert.rejects(r.read(descriptor), isFormat(pattern), JSON.stringify(descriptor));
});

test('descriptors that do not match the slot are refused: bounds, generation, checksum, missing files', async () => {
  const r = reader();
  await assert.rejects(r.read({ ...good, length: good.length + 1 }), isFormat(/names bytes \[128, 138\) but the slot holds a batch at \[128, 137\)/));
  await assert.rejects(r.read({ ...good, offset: 129 }), isFormat(/names bytes \[129/));
  await assert.rejects(r.read({ ...good, checksum: (good.checksum! + 1) >>> 0 }), isFormat(/checksum \d+ is not the slot's \d+/));
  await assert.rejects(r.read({ ...good, generation: 7 }), (e: unknown) => e instanceof StaleDescriptorError && e.expected === 7 && e.found === 1 && /from the future/.test(e.message));
  await assert.rejects(r.read({ ...good, slot: 1 }), isFormat(/stale descriptor: it names generation 1 but the slot holds generation 0/));
  await assert.rejects(r.read({ ...good, slot: 9 }), isFormat(/segment shardline-mnist-0-r1-9 does not exist in/));
  await assert.rejects(r.read({ ...good, ring: 'shardline-mnist-0-gone' }), isFormat(/does not exist/));
});

test('a released and rewritten slot makes the old descriptor stale, never a read of the new batch', async () => {
  const local = await ShmRing.create({ job: 'mnist', rank: 0, slots: 1, slotBytes: 64, directory: dir, checkSpace: false });
  try {
    const first = await local.write(Buffer.from('first'));
    local.release(first);
    const second = await local.write(Buffer.from('second'));
    await assert.rejects(reader().read(first), (e: unknown) => e instanceof StaleDescriptorError && /released and the slot rewritten/.test(e.message));
    assert.equal((await reader().read(second)).toString(), 'second');
  } finally {
    await local.close();
  }
});

test('tampered segment files are FormatErrors: corrupted bytes, a slot being written, a bad header, truncation, symlinks, directories', async () => {
  const local = await ShmRing.create({ job: 'mnist', rank: 0, slots: 1, slotBytes: 64, directory: dir, checkSpace: false });
  const path = local.paths[0]!;
  const r = reader();
  try {
    const d = await local.write(Buffer.from('payload'));
    const file = await open(path, 'r+');
    try {
      await file.write(Buffer.from('X'), 0, 1, HEADER_BYTES);
      await assert.rejects(r.read(d), isFormat(/CRC-32 \d+ does not match the descriptor's \d+/));
      const owner = currentOwner();
      await file.write(encodeHeader({ slot: 0, owner, capacity: 64, generation: d.generation, length: d.length, state: SlotState.Writing, crc32: 0 }), 0, HEADER_BYTES, 0);
      await assert.rejects(r.read(d), (e: unknown) => e instanceof StaleDescriptorError && /being rewritten/.test(e.message));
      await file.write(encodeHeader({ slot: 3, owner, capacity: 64, generation: d.generation, length: d.length, state: SlotState.Ready, crc32: 0 }), 0, HEADER_BYTES, 0);
      await assert.rejects(r.read(d), isFormat(/the header is of slot 3, the descriptor names slot 0/));
      await file.write(Buffer.from('NOTMAGIC'), 0, 8, 0);
      await assert.rejects(r.read(d), isFormat(/not a Shardline segment \(magic "NOTMAGIC"/));
      await file.write(encodeHeader({ slot: 0, owner, capacity: 64, generation: d.generation, length: d.length, state: SlotState.Ready, crc32: d.checksum! }), 0, HEADER_BYTES, 0);
    } finally {
      await file.close();
    }
    await truncate(path, HEADER_BYTES + 3);
    await assert.rejects(r.read(d), isFormat(/the file has 131 bytes, less than the 192 of its header and capacity/));
    await truncate(path, 40);
    await assert.rejects(r.read(d), isFormat(/truncated: 40 of 128 bytes at offset 0/));
  } finally {
    await local.close();
  }
  await writeFile(join(dir, 'target'), 'secret');
  await symlink(join(dir, 'target'), join(dir, 'shardline-mnist-0-link-0'));
  await assert.rejects(r.read({ ...good, ring: 'shardline-mnist-0-link' }), isFormat(/is a symbolic link/));
  await mkdir(join(dir, 'shardline-mnist-0-dir-0'));
  await assert.rejects(r.read({ ...good, ring: 'shardline-mnist-0-dir' }), isFormat(/is not a regular file/));
  await rm(join(dir, 'shardline-mnist-0-dir-0'), { recursive: true });
  await rm(join(dir, 'shardline-mnist-0-link-0'));
  await rm(join(dir, 'target'));
});

test('property: any value as a descriptor gives bytes or a FormatError, never another error', async () => {
  const r = reader();
  const near = fc.record({
    ring: fc.constantFrom(good.ring, 'shardline-mnist-0-zz', '..', ''),
    slot: fc.oneof(fc.integer({ min: -2, max: 3 }), fc.double()),
    generation: fc.oneof(fc.integer({ min: -1, max: 3 }), fc.constant(2 ** 60)),
    offset: fc.integer({ min: -1, max: 300 }),
    length: fc.oneof(fc.integer({ min: -1, max: 100 }), fc.constant(2 ** 53)),
  });
  await fc.assert(
    fc.asyncProperty(fc.oneof(fc.anything(), near), async (value) => {
      try {
        const bytes = await r.read(value);
        assert.equal(bytes.toString(), 'the batch');
      } catch (error) {
        assert.ok(error instanceof FormatError, String(error));
      }
    }),
    { numRuns: 200 },
  );
});

test('bad reader options are refused', () => {
  assert.throws(() => new ShmReader({ job: 'a.b', rank: 0 }), ArgumentError);
  assert.throws(() => new ShmReader({ job: 'a', rank: 2 ** 32 }), /rank/);
  assert.throws(() => new ShmReader({ job: 'a', rank: 0, directory: '' }), /directory/);
});
