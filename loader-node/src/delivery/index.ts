/**
 * Batch delivery from a loader to its trainer over core NATS (docs/protocol.md): BatchSender, the
 * loader's end. The protocol itself (messages, frames, state machines, the shared-memory ring) is
 * in `@shardline/core/protocol`; the trainer's end is in `@shardline/client`.
 */
export { BatchSender, batchSenderDefaults } from './batch-sender.ts';
export type { BatchSenderOptions, BatchSenderStats } from './batch-sender.ts';
export type { BatchSink, CallOptions, OutgoingBatch, SessionInfo, SenderEvent } from '@shardline/core/protocol';
