/**
 * The delivery protocol's building blocks, for other transports (shared memory), the trainer
 * clients and tests: control messages, data frames, and the pure state machines of both ends.
 */
export * from './index.ts';
export { MAX_U32, requirePosition, successor } from './position.ts';
export { requireRank, requireSubjectToken } from './subjects.ts';
export {
  ID_PATTERN,
  LOADER_MESSAGE_TYPES,
  MAX_CONTROL_MESSAGE_BYTES,
  MAX_NACK_CHUNKS,
  TRAINER_MESSAGE_TYPES,
  VersionMismatchError,
  decodeControlMessage,
  encodeControlMessage,
} from './messages.ts';
export type { Ack, Bye, ControlMessage, Credit, EndOfEpoch, Hello, LoaderMessage, Nack, Refused, Reset, TrainerMessage, Welcome } from './messages.ts';
export { FRAME_FIXED_BYTES, chunkLayout, decodeChunkFrame, encodeChunkFrame } from './frame.ts';
export type { ChunkFrame, ChunkHeader, ChunkLayout } from './frame.ts';
export { CreditWindow } from './credit-window.ts';
export type { AckOutcome, CreditOutcome, CreditWindowOptions, HelloOutcome, HelloRequest, NackOutcome, StreamItem } from './credit-window.ts';
export { itemPosition } from './credit-window.ts';
export { MAX_CHUNKS_PER_BATCH, ReceiveWindow } from './receive-window.ts';
export type { AcceptOutcome, MissingItem, ReceiveWindowOptions } from './receive-window.ts';
export { SenderProtocol } from './sender-protocol.ts';
export type { Outgoing, SenderProtocolOptions } from './sender-protocol.ts';
export { ReceiverProtocol } from './receiver-protocol.ts';
export type { HelloReason } from './receiver-protocol.ts';
export type { ReceiverProtocolOptions, ReceiverStep } from './receiver-protocol.ts';
