/**
 * @shardline/client: the trainer's end of Shardline's batch delivery (docs/protocol.md) for
 * TypeScript — a rank's batches from its loader, in order and exactly once.
 */
export { BatchReceiver, batchReceiverDefaults } from './batch-receiver.ts';
export type { BatchReceiverOptions, BatchReceiverStats } from './batch-receiver.ts';
export { TrainerStream, batches } from './batches.ts';
export type { BatchesOptions, NatsConnectOptions, ReceiverTuning, TrainerBatch, TrainerItem, TrainerStreamStats } from './batches.ts';
export { TFJS_DTYPE, toTfjs } from './tfjs.ts';
export type { TfjsDType, TfjsModule, ToTfjsOptions } from './tfjs.ts';
export type { BatchSource, DeliveredBatch, DeliveredEndOfEpoch, Delivery, Position, ReceiverEvent, ReceiverState } from '@shardline/core/protocol';
