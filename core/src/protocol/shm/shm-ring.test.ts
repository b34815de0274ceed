/** The loader's ring: round trips through ShmReader, slot reuse, back-pressure, abort, close, release rules, an invariant property. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { AbortError, ArgumentError, ClosedError } from '../../errors.ts';
import type { SegmentDescriptor } from './descriptor.ts';
import { HEADER_BYTES } from './segment-file.ts';
import { ShmReader } from './shm-reader.ts';
import { ShmRing, type ShmRingOptions } from './shm-ring.ts';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'shm-ring-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const make = (over: Partial<ShmRingOptions> = {}) => ShmRing.create({ job: 'mnist', rank: 2, slots: 3, slotBytes: 256, directory: dir, checkSpace: false, ...over });
const readers: ShmReader[] = [];
/** A reader closed after the file's tests (it keeps segment files open between reads). */
const reader = (): ShmReader => {
  const r = new ShmReader({ job: 'mnist', rank: 2, directory: dir });
  readers.push(r);
  return r;
};
after(() => Promise.all(readers.map((r) => r.close())));
/** Whether `promise` is still pending after the event loop had a chance to settle it. */
async function pending(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  await new Promise((resolve) => setTimeout(resolve, 20));
  return !settled;
}

test('many batches round-trip through a small ring, slots reused, descriptors small', async () => {
  const ring = await make();
  const r = reader();
  try {
    const seen = new Set<string>();
    for (let i = 0; i < 40; i++) {
      const bytes = randomBytes(i * 6);
      const d = await ring.write(bytes);
      assert.deepEqual(await r.read(d), bytes);
      assert.ok(JSON.stringify(d).length < 200, JSON.stringify(d));
      assert.equal(d.offset, HEADER_BYTES);
      assert.equal(typeof d.checksum, 'number');
      seen.add(`${d.slot}/${d.generation}`);
      assert.equal(ring.release(d), true);
    }
    assert.equal(seen.size, 40);
    assert.equal(ring.inUse, 0);
  } finally {
    await ring.close();
  }
});

test('without checksums, descriptors carry none and still round-trip', async () => {
  const ring = await make({ checksum: false });
  try {
    const d = await ring.write(Buffer.from('hello'));
    assert.equal('checksum' in d, false);
    assert.equal((await reader().read(d)).toString(), 'hello');
  } finally {
    await ring.close();
  }
});

test('a full ring makes write() wait until a release, which hands the slot to the oldest waiter', async () => {
  const ring = await make({ slots: 2 });
  try {
    const a = await ring.write(Buffer.from('a'));
    const b = await ring.write(Buffer.from('b'));
    assert.equal(ring.inUse, 2);
    const c = ring.write(Buffer.from('c'));
    const d = ring.write(Buffer.from('d'));
    assert.equal(await pending(c), true);
    assert.equal(ring.release(b), true);
    const dc = await c;
    assert.equal(dc.slot, b.slot);
    assert.equal(dc.generation, b.generation + 1);
    assert.equal(await pending(d), true);
    // The reader sees the new batch in the reused slot, and the old descriptor is stale.
    assert.equal((await reader().read(dc)).toString(), 'c');
    await assert.rejects(reader().read(b), /stale descriptor: it names generation 1 but the slot holds generation 2/);
    ring.release(a);
    assert.equal((await reader().read(await d)).toString(), 'd');
    assert.equal(ring.inUse, 2);
  } finally {
    await ring.close();
  }
});

test('an abort ends the wait for a slot, and the slot goes to the next waiter', async () => {
  const ring = await make({ slots: 1 });
  try {
    const a = await ring.write(Buffer.from('a'));
    const controller = new AbortController();
    const aborted = ring.write(Buffer.from('x'), { signal: controller.signal });
    const next = ring.write(Buffer.from('y'));
    controller.abort();
    await assert.rejects(aborted, (e: unknown) => e instanceof AbortError && /all 1 slots were in use/.test(e.message));
    await assert.rejects(ring.write(Buffer.from('z'), { signal: AbortSignal.abort() }), AbortError);
    ring.release(a);
    assert.equal((await reader().read(await next)).toString(), 'y');
  } finally {
    await ring.close();
  }
});

test('close() rejects waiting writes, then writes are refused', async () => {
  const ring = await make({ slots: 1 });
  await ring.write(Buffer.from('a'));
  const waiting = assert.rejects(ring.write(Buffer.from('b')), (e: unknown) => e instanceof ClosedError && /closed while write\(\) waited/.test(e.message));
  await ring.close();
  await waiting;
  await assert.rejects(ring.write(Buffer.from('c')), ClosedError);
  assert.equal(ring.closed, true);
});

test('a batch larger than a slot is an error naming both sizes; an exact fit is fine', async () => {
  const ring = await make({ slotBytes: 100 });
  try {
    await assert.rejects(ring.write(new Uint8Array(101)), (e: unknown) => e instanceof ArgumentError && /batch of 101 bytes does not fit a slot of 100 bytes/.test(e.message));
    assert.equal(ring.fits(101), false);
    assert.equal(ring.fits(100), true);
    const d = await ring.write(new Uint8Array(100).fill(7));
    assert.deepEqual(await reader().read(d), Buffer.alloc(100, 7));
    await assert.rejects(ring.write('text' as unknown as Uint8Array), /bytes: must be a Uint8Array/);
  } finally {
    await ring.close();
  }
});

test('release() is idempotent for a repeated ack and refuses descriptors the ring never issued', async () => {
  const ring = await make({ slots: 1 });
  try {
    const d = await ring.write(Buffer.from('a'));
    assert.equal(ring.release(d), true);
    assert.equal(ring.release(d), false);
    const again = await ring.write(Buffer.from('b'));
    assert.equal(again.generation, 2);
    // A late ack of the slot's previous batch must not free the batch now in it.
    assert.equal(ring.release(d), false);
    assert.equal(ring.inUse, 1);
    assert.throws(() => ring.release({ ...d, ring: 'shardline-mnist-2-other' }), /descriptor.ring: "shardline-mnist-2-other" is not this ring/);
    assert.throws(() => ring.release({ ...d, slot: 5 }), /slot 5 is out of range for a ring of 1 slots/);
    assert.throws(() => ring.release({ ...d, generation: 99 }), /never issued generation 99/);
    assert.throws(() => ring.release({ ...d, slot: -1 }), ArgumentError);
    assert.throws(() => ring.release(null as unknown as SegmentDescriptor), /descriptor: segment descriptor: must be an object/);
  } finally {
    await ring.close();
  }
});

test('bad options are refused, naming the option', async () => {
  await assert.rejects(make({ slots: 0 }), /slots: must be in \[1, 1024\]/);
  await assert.rejects(make({ slotBytes: 2 ** 32 }), /slotBytes: must be in/);
  await assert.rejects(make({ job: '../etc' }), /job: must be 1 to 63 lower-case/);
  await assert.rejects(make({ ringId: 'a-b' }), /ringId: must be 1 to 32 lower-case letters or digits, got "a-b"/);
  await assert.rejects(make({ ringId: 'x/y' }), /ringId/);
  await assert.rejects(make({ rank: -1 }), /rank: must be an integer/);
  await assert.rejects(make({ slots: 1024, slotBytes: 2 ** 32 - 1, checkSpace: true }), /1024 slots of 4294967295 bytes need \d+ bytes but .* has \d+ bytes free/);
});

test('a ring id in use is never overwritten: create() fails and leaves the other ring intact', async () => {
  const first = await make({ ringId: 'fixed' });
  try {
    const d = await first.write(Buffer.from('keep'));
    await assert.rejects(make({ ringId: 'fixed' }), /EEXIST/);
    assert.equal((await reader().read(d)).toString(), 'keep');
  } finally {
    await first.close();
  }
});

test('property: any sequence of writes and releases keeps at most N slots in use, and every outstanding descriptor reads its own bytes', async () => {
  const op = fc.oneof(
    fc.record({ kind: fc.constant('write' as const), bytes: fc.uint8Array({ maxLength: 48 }) }),
    fc.record({ kind: fc.constant('release' as const), pick: fc.nat() }),
  );
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 1, max: 4 }), fc.array(op, { maxLength: 30 }), async (slots, ops) => {
      const ring = await make({ slots, slotBytes: 48 });
      const r = reader();
      const out: { d: SegmentDescriptor; bytes: Uint8Array }[] = [];
      try {
        for (const o of ops) {
          if (o.kind === 'write') {
            if (out.length === slots) {
              // Full: a write must wait, not take a slot that is in use.
              const controller = new AbortController();
              const blocked = ring.write(o.bytes, { signal: controller.signal });
              await new Promise((resolve) => setImmediate(resolve));
              controller.abort();
              await assert.rejects(blocked, AbortError);
            } else {
              out.push({ d: await ring.write(o.bytes), bytes: o.bytes });
            }
          } else if (out.length > 0) {
            const [gone] = out.splice(o.pick % out.length, 1);
            assert.equal(ring.release(gone!.d), true);
          }
          assert.equal(ring.inUse, out.length);
          assert.ok(ring.inUse <= slots);
          const live = new Set(out.map(({ d }) => d.slot));
          assert.equal(live.size, out.length, 'two outstanding descriptors share a slot');
        }
        for (const { d, bytes } of out) assert.deepEqual(new Uint8Array(await r.read(d)), bytes);
      } finally {
        await ring.close();
      }
    }),
    { numRuns: 60 },
  );
});
