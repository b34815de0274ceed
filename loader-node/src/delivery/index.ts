/**
 * Batch delivery from a loader to its trainer (docs/protocol.md): the transport-independent
 * BatchSink / BatchSource and their core-NATS implementations, BatchSender and BatchReceiver.
 * The protocol's building blocks (messages, frames, state machines) are in ./internal.ts.
 */
export type { BatchSink, BatchSource, CallOptions, DeliveredBatch, DeliveredEndOfEpoch, Delivery, OutgoingBatch } from './batch-transport.ts';
export { BatchSender, batchSenderDefaults } from './batch-sender.ts';
export type { BatchSenderOptions, BatchSenderStats } from './batch-sender.ts';
export type { SessionInfo } from './credit-window.ts';
export { BatchReceiver, batchReceiverDefaults } from './batch-receiver.ts';
export type { BatchReceiverOptions, BatchReceiverStats } from './batch-receiver.ts';
export { SUBJECT_ROOT, SUBJECT_TOKEN, deliverySubjects, jobSubjectPrefix } from './subjects.ts';
export type { DeliverySubjects, StreamScope } from './subjects.ts';
export { comparePositions, formatPosition } from './position.ts';
export type { Position } from './position.ts';
export { PROTOCOL_VERSION, RefusalReason } from './messages.ts';
export type { SenderEvent } from './sender-protocol.ts';
export type { ReceiverEvent, ReceiverState } from './receiver-protocol.ts';
