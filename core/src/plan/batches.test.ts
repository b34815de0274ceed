import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ArgumentError, IndexOutOfRangeError } from '../errors.ts';
import { BatchLayout } from './batches.ts';
import type { BatchSizeStep } from './batches.ts';

function all(layout: BatchLayout) {
  return Array.from({ length: layout.count }, (_, k) => layout.batch(k));
}

test('a constant batch size cuts L positions into ⌈L/B⌉ batches (⌊L/B⌋ with dropLast)', () => {
  assert.deepEqual(
    all(new BatchLayout(10, 4)).map((b) => [b.start, b.size]),
    [
      [0, 4],
      [4, 4],
      [8, 2],
    ],
  );
  assert.equal(new BatchLayout(10, 4, { dropLast: true }).count, 2);
  assert.equal(new BatchLayout(8, 4, { dropLast: true }).count, 2);
  assert.equal(new BatchLayout(0, 4).count, 0);
  assert.equal(new BatchLayout(3, 4, { dropLast: true }).count, 0);
});

test('a schedule changes the size at global steps, offset by the epoch start', () => {
  const schedule: BatchSizeStep[] = [
    { fromStep: 0, batchSize: 2 },
    { fromStep: 3, batchSize: 5 },
  ];
  const a = new BatchLayout(20, schedule);
  assert.deepEqual(
    all(a).map((b) => [b.step, b.start, b.size]),
    [
      [0, 0, 2],
      [1, 2, 2],
      [2, 4, 2],
      [3, 6, 5],
      [4, 11, 5],
      [5, 16, 4],
    ],
  );
  // An epoch that starts at global step 2: one batch of 2, then 5s.
  const b = new BatchLayout(20, schedule, { stepOffset: 2 });
  assert.deepEqual(
    all(b).map((x) => [x.step, x.start, x.size]),
    [
      [2, 0, 2],
      [3, 2, 5],
      [4, 7, 5],
      [5, 12, 5],
      [6, 17, 3],
    ],
  );
  // Changes after the epoch's end do not matter.
  assert.equal(new BatchLayout(4, [{ fromStep: 0, batchSize: 2 }, { fromStep: 100, batchSize: 7 }]).count, 2);
});

test('batches tile [0, L) in order and follow the schedule (fast-check)', () => {
  const scheduleArb = fc
    .array(fc.record({ gap: fc.integer({ min: 1, max: 4 }), batchSize: fc.integer({ min: 1, max: 6 }) }), {
      minLength: 1,
      maxLength: 4,
    })
    .map((entries) => {
      let step = 0;
      return entries.map(({ gap, batchSize }, i) => {
        if (i > 0) step += gap;
        return { fromStep: step, batchSize };
      });
    });
  fc.assert(
    fc.property(fc.nat({ max: 60 }), scheduleArb, fc.nat({ max: 8 }), fc.boolean(), (L, schedule, stepOffset, dropLast) => {
      const layout = new BatchLayout(L, schedule, { stepOffset, dropLast });
      let position = 0;
      for (const b of all(layout)) {
        assert.equal(b.start, position);
        assert.equal(b.step, stepOffset + b.index);
        const inForce = schedule.filter((s) => s.fromStep <= b.step).pop()!.batchSize;
        if (b.start + inForce <= L) assert.equal(b.size, inForce);
        else {
          assert.equal(dropLast, false, 'dropLast keeps no short batch');
          assert.equal(b.size, L - b.start);
        }
        position += b.size;
      }
      // Without dropLast everything is covered; with it, less than one batch is left over.
      if (!dropLast) assert.equal(position, L);
      else assert.ok(L - position < Math.max(...schedule.map((s) => s.batchSize)));
    }),
  );
});

test('bad schedules and batch numbers are refused, naming the field', () => {
  assert.throws(() => new BatchLayout(10, 0), (e: unknown) => e instanceof ArgumentError && e.argument === 'batchSize');
  assert.throws(() => new BatchLayout(10, -3), /batchSize: must be in \[1, /);
  assert.throws(() => new BatchLayout(10, []), /batchSize/);
  assert.throws(() => new BatchLayout(10, [{ fromStep: 1, batchSize: 2 }]), /batchSize\[0\]\.fromStep: must be 0/);
  assert.throws(
    () => new BatchLayout(10, [{ fromStep: 0, batchSize: 2 }, { fromStep: 0, batchSize: 3 }]),
    /batchSize\[1\]\.fromStep: must be greater than 0/,
  );
  assert.throws(() => new BatchLayout(10, [{ fromStep: 0, batchSize: 2.5 }]), /batchSize\[0\]\.batchSize/);
  assert.throws(() => new BatchLayout(10, [null as unknown as BatchSizeStep]), /batchSize\[0\]/);
  assert.throws(() => new BatchLayout(10, 2, { stepOffset: -1 }), /stepOffset/);
  const layout = new BatchLayout(10, 4);
  assert.throws(() => layout.batch(3), IndexOutOfRangeError);
  assert.throws(() => layout.batch(-1), IndexOutOfRangeError);
});
