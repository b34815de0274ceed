/**
 * The batch delivery protocol (docs/protocol.md), without a transport: control messages, data
 * frames, subjects, positions, the pure state machines of both ends, and the shared-memory
 * segment ring. The loader's NATS sender (loader-node) and the trainer clients (client/) are
 * built from these; nothing here opens a network connection.
 */
export type { BatchSink, BatchSource, CallOptions, DeliveredBatch, DeliveredEndOfEpoch, Delivery, OutgoingBatch } from './batch-transport.ts';
export { SUBJECT_ROOT, SUBJECT_TOKEN, deliverySubjects, jobSubjectPrefix, requireRank, requireSubjectToken } from './subjects.ts';
export type { DeliverySubjects, StreamScope } from './subjects.ts';
export { MAX_U32, comparePositions, formatPosition, requirePosition, successor } from './position.ts';
export type { Position } from './position.ts';
export {
  ID_PATTERN,
  LOADER_MESSAGE_TYPES,
  MAX_CONTROL_MESSAGE_BYTES,
  MAX_NACK_CHUNKS,
  PROTOCOL_VERSION,
  RefusalReason,
  TRAINER_MESSAGE_TYPES,
  Transport,
  VersionMismatchError,
  decodeControlMessage,
  encodeControlMessage,
  newSessionId,
} from './messages.ts';
export type { Ack, Bye, ControlMessage, Credit, EndOfEpoch, Hello, LoaderMessage, Nack, Refused, Reset, TrainerMessage, Welcome } from './messages.ts';
export {
  FRAME_FIXED_BYTES,
  FRAME_KIND_CHUNK,
  FramedBatch,
  FRAME_KIND_SHM,
  MAX_SHM_DESCRIPTOR_BYTES,
  chunkLayout,
  decodeChunkFrame,
  decodeShmFrame,
  encodeChunkFrame,
  encodeShmFrame,
  frameHeaderBytes,
  frameKind,
} from './frame.ts';
export type { ChunkFrame, ChunkHeader, ChunkLayout, ShmFrame, ShmFrameHeader } from './frame.ts';
export { CreditWindow, batchByteLength, itemPosition } from './credit-window.ts';
export type { AckOutcome, CreditOutcome, CreditWindowOptions, HelloOutcome, HelloRequest, NackOutcome, SessionInfo, StreamItem } from './credit-window.ts';
export { MAX_CHUNKS_PER_BATCH, ReceiveWindow } from './receive-window.ts';
export type { AcceptOutcome, MissingItem, ReceiveWindowOptions } from './receive-window.ts';
export { SenderProtocol } from './sender-protocol.ts';
export type { Outgoing, SenderEvent, SenderProtocolOptions } from './sender-protocol.ts';
export { ReceiverProtocol } from './receiver-protocol.ts';
export type { HelloReason, ReceiverEvent, ReceiverProtocolOptions, ReceiverState, ReceiverStep } from './receiver-protocol.ts';
export { onAbort, requireId, safeId, withoutUndefined } from './options.ts';
export * from './shm/index.ts';
