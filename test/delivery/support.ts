/**
 * Helpers for the delivery tests against a real nats-server: real wire-format batches, a
 * connection that loses chosen publishes, an observer that checks the credit rule from outside
 * (frames published and acks seen on the wire), and a timeout for awaited events.
 */
import assert from 'node:assert/strict';
import { decodeBatch, encodeBatch } from '@shardline/core';
import type { NatsConnection } from 'nats';
import { type ChunkFrame, comparePositions, decodeChunkFrame, decodeControlMessage, type Delivery, type DeliverySubjects, type OutgoingBatch, type Position } from '@shardline/core/protocol';

/** A real batch (docs/wire-format.md): `rows` samples of `rowBytes` bytes each, contents derived from (epoch, step). */
export function makeBatch(job: string, rank: number, epoch: number, step: number, rows: number, rowBytes: number): OutgoingBatch {
  const sampleIds = Array.from({ length: rows }, (_, i) => epoch * 1_000_000 + step * 1000 + i);
  const data = new Uint8Array(rows * rowBytes);
  for (let i = 0; i < data.length; i++) data[i] = (epoch * 131 + step * 17 + i) & 0xff;
  const bytes = encodeBatch({ x: { dtype: 'uint8', shape: [rows, rowBytes], data } }, { job, epoch, rank, step, sampleIds });
  return { epoch, step, sampleIds, bytes };
}

/** Checks that `delivered` is the batch `expected` (decoded: metadata and tensor bytes). */
export function assertSameBatch(delivered: Delivery, expected: OutgoingBatch, job: string, rank: number): void {
  assert.equal(delivered.type, 'batch', `expected the batch at epoch ${expected.epoch} step ${expected.step}, got an end of epoch`);
  if (delivered.type !== 'batch') return;
  assert.deepEqual([delivered.epoch, delivered.step], [expected.epoch, expected.step]);
  assert.equal(delivered.bytes.byteLength, expected.bytes.byteLength);
  assert.ok(Buffer.from(delivered.bytes).equals(Buffer.from(expected.bytes)), `bytes of the batch at epoch ${expected.epoch} step ${expected.step}`);
  const { metadata } = decodeBatch(delivered.bytes);
  assert.deepEqual(
    { job: metadata.job, rank: metadata.rank, epoch: metadata.epoch, step: metadata.step, sampleIds: metadata.sampleIds },
    { job, rank, epoch: expected.epoch, step: expected.step, sampleIds: [...expected.sampleIds] },
  );
}

/** Fails instead of hanging when the awaited thing never comes. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** `nc`, except that publishes for which `drop` returns true are silently lost (as in flight). */
export function losing(nc: NatsConnection, drop: (subject: string, data: Uint8Array) => boolean): NatsConnection {
  return new Proxy(nc, {
    get(target, property, receiver) {
      if (property === 'publish') {
        return (subject: string, data: Uint8Array, options?: unknown) => {
          if (!drop(subject, data)) (target.publish as (s: string, d: Uint8Array, o?: unknown) => void)(subject, data, options);
        };
      }
      const value: unknown = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/** The frame in `data`, or undefined when it is not one. */
export function frameOf(data: Uint8Array): ChunkFrame | undefined {
  try {
    return decodeChunkFrame(data);
  } catch {
    return undefined;
  }
}

/**
 * Watches a rank's subjects from a third connection and checks the credit rule on the wire: at
 * every data frame, the batches of the session published and not yet acked never exceed `limit`.
 * (One server delivers to the observer in the order it handled the messages, so an ack the loader
 * acted on is seen before the frames it allowed.)
 */
export class CreditObserver {
  maxOutstanding = 0;
  frames = 0;
  violations: string[] = [];
  readonly #published = new Map<number, Position[]>();
  readonly #acked = new Map<number, Position>();
  readonly #limit: number;

  constructor(nc: NatsConnection, subjects: DeliverySubjects, limit: number) {
    this.#limit = limit;
    nc.subscribe(subjects.data, {
      callback: (_e, m) => {
        const f = frameOf(m.data);
        if (f !== undefined) this.#onFrame(f);
      },
    });
    nc.subscribe(subjects.ctl, {
      callback: (_e, m) => {
        try {
          const msg = decodeControlMessage(m.data, ['ack']);
          const last = this.#acked.get(msg.session);
          if (last === undefined || comparePositions(msg, last) > 0) this.#acked.set(msg.session, { epoch: msg.epoch, step: msg.step });
        } catch {
          // not an ack
        }
      },
    });
  }

  #onFrame(f: ChunkFrame): void {
    this.frames++;
    const list = this.#published.get(f.session) ?? [];
    this.#published.set(f.session, list);
    if (!list.some((p) => p.epoch === f.epoch && p.step === f.step)) list.push({ epoch: f.epoch, step: f.step });
    const acked = this.#acked.get(f.session);
    const outstanding = list.filter((p) => acked === undefined || comparePositions(p, acked) > 0).length;
    this.maxOutstanding = Math.max(this.maxOutstanding, outstanding);
    if (outstanding > this.#limit) this.violations.push(`${outstanding} batches outstanding at epoch ${f.epoch} step ${f.step} (limit ${this.#limit})`);
  }
}
