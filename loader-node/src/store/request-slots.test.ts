/**
 * RequestSlots: never more holders than its capacity (property, under random acquire, abort and
 * release orders), first come first served, and an aborted waiter holds nothing.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ArgumentError } from '@shardline/core';
import { RequestSlots, type Release } from './request-slots.ts';

test('waiters are served in order once slots are released; a double release frees one slot only', async () => {
  const slots = new RequestSlots(2);
  const a = await slots.acquire();
  await slots.acquire();
  const order: string[] = [];
  const c = slots.acquire().then((r) => (order.push('c'), r));
  const d = slots.acquire().then((r) => (order.push('d'), r));
  assert.equal(slots.waiting, 2);
  a();
  a();
  await c;
  assert.deepEqual(order, ['c']);
  assert.equal(slots.inUse, 2);
  assert.equal(slots.waiting, 1);
  (await c)();
  await d;
  assert.deepEqual(order, ['c', 'd']);
});

test('an aborted waiter rejects with the reason and takes no slot', async () => {
  const slots = new RequestSlots(1);
  const held = await slots.acquire();
  const controller = new AbortController();
  const waiting = slots.acquire(controller.signal);
  controller.abort(new Error('gone'));
  await assert.rejects(waiting, /gone/);
  assert.equal(slots.waiting, 0);
  held();
  assert.equal(slots.inUse, 0);
  await assert.rejects(slots.acquire(AbortSignal.abort(new Error('already'))), /already/);
  assert.throws(() => new RequestSlots(0), ArgumentError);
});

test('property: holders never exceed the capacity, and every slot comes back', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 4 }),
      fc.array(fc.constantFrom('acquire', 'acquire-abortable', 'abort', 'release'), { maxLength: 60 }),
      async (capacity, steps) => {
        const slots = new RequestSlots(capacity);
        const held: Release[] = [];
        const controllers: AbortController[] = [];
        const pending: Promise<void>[] = [];
        for (const step of steps) {
          if (step === 'acquire' || step === 'acquire-abortable') {
            const controller = step === 'acquire-abortable' ? new AbortController() : undefined;
            if (controller !== undefined) controllers.push(controller);
            pending.push(slots.acquire(controller?.signal).then((r) => void held.push(r), () => undefined));
          } else if (step === 'abort') {
            controllers.shift()?.abort();
          } else {
            held.shift()?.();
          }
          await Promise.resolve();
          assert.ok(slots.inUse <= capacity && held.length <= capacity, `${slots.inUse} in use`);
        }
        for (const c of controllers) c.abort();
        // Release until every non-aborted waiter has been served and has released.
        while (held.length > 0 || slots.waiting > 0) {
          held.shift()?.();
          await new Promise((r) => setImmediate(r));
        }
        await Promise.all(pending);
        assert.equal(slots.inUse, 0);
      },
    ),
    { numRuns: 200 },
  );
});
