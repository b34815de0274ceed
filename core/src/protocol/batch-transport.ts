/**
 * The two ends of batch delivery, independent of the transport: the loader's pipeline writes to
 * a {@link BatchSink} and the trainer reads from a {@link BatchSource}. NATS (batch-sender.ts,
 * batch-receiver.ts) is one implementation; shared memory and in-process pairs implement the same
 * interfaces, so neither the pipeline nor the trainer client knows which one it talks to.
 *
 * A rank's stream is ordered by position (position.ts): each epoch's batches at steps 0…n − 1,
 * then its end marker. Sinks take items in that order; sources give them in that order, each
 * exactly once.
 */
import type { Position } from './position.ts';

/** A batch the pipeline hands to a sink: its place in the stream and its wire-format bytes. */
export interface OutgoingBatch {
  readonly epoch: number;
  readonly step: number;
  /** Global ids of the batch's samples, reported back when the batch is acked (the sample ledger). */
  readonly sampleIds: readonly number[];
  /** The encoded batch (docs/wire-format.md). The sink copies it: once send() resolved, the caller may reuse the buffer. */
  readonly bytes: Uint8Array;
  /**
   * The caller hands `bytes` over: it will not change them again, so the sink keeps them without
   * a copy (one copy and one large allocation less per batch). Default false.
   */
  readonly transfer?: boolean;
}

/** Cancellation of one call. */
export interface CallOptions {
  readonly signal?: AbortSignal;
}

/** The loader's end: accepts the stream's items in order and holds them until the trainer acks them. */
export interface BatchSink {
  /**
   * Accepts the next batch. Resolves once the batch is in the sink's bounded window (it may wait
   * for the trainer to ack earlier batches: that is the pipeline's back-pressure); the batch is
   * delivered later.
   * @throws ArgumentError when the batch is not the next position or is too large; AbortError;
   * ClosedError after close().
   */
  send(batch: OutgoingBatch, options?: CallOptions): Promise<void>;
  /** Ends epoch `epoch` after `batches` batches: the next item must be that epoch's end marker. */
  endEpoch(epoch: number, batches: number, options?: CallOptions): Promise<void>;
  /** Resolves once the trainer acked every item accepted so far. */
  acknowledged(options?: CallOptions): Promise<void>;
  /** Stops delivering; pending calls reject with a ClosedError. Idempotent. */
  close(): Promise<void>;
}

/** A batch as the trainer receives it. */
export interface DeliveredBatch {
  readonly type: 'batch';
  readonly job: string;
  readonly rank: number;
  readonly epoch: number;
  readonly step: number;
  /** The encoded batch, owned by the receiver's caller (decode it with `decodeBatch`). */
  readonly bytes: Uint8Array;
}

/** The end of an epoch, given after all its batches. */
export interface DeliveredEndOfEpoch {
  readonly type: 'end-of-epoch';
  readonly epoch: number;
  /** How many batches the epoch had. */
  readonly batches: number;
}

/** One item of the stream, as a source gives it. */
export type Delivery = DeliveredBatch | DeliveredEndOfEpoch;

/** The trainer's end: the stream's items in order, each exactly once. */
export interface BatchSource extends AsyncIterable<Delivery> {
  /** The next item; waits for it (the time waited is reported to the source's wait-time callback). */
  read(options?: CallOptions): Promise<Delivery>;
  /**
   * The batches of the next epoch, in step order, ending after its end marker.
   * @example
   * for await (const batch of source.epoch()) train(decodeBatch(batch.bytes));
   */
  epoch(options?: CallOptions): AsyncIterable<DeliveredBatch>;
  /** The position the next read() returns (null before the stream's start is known). */
  readonly position: Position | null;
  /** Leaves the stream (unconsumed items stay with the sink for a later reader); pending reads reject with a ClosedError. Idempotent. */
  close(): Promise<void>;
}
