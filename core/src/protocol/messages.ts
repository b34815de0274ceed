/**
 * The control messages of the delivery protocol (docs/protocol.md): small JSON objects with a
 * `type` and the protocol `version`, validated with zod when received. Anything that is not one
 * of them (too large, not UTF-8, not JSON, an unknown type or version, a field out of range) is a
 * FormatError naming the field; receivers log and drop it. Batch bytes travel in binary frames
 * instead (frame.ts).
 */
import { randomInt } from 'node:crypto';
import { FormatError } from '../errors.ts';
import { z } from 'zod';
import { MAX_U32, type Position } from './position.ts';
import { SUBJECT_TOKEN } from './subjects.ts';

/** The protocol version this module speaks; a hello with another version is refused. */
export const PROTOCOL_VERSION = 1;

/** Largest control message accepted, in bytes; longer ones are rejected before parsing. */
export const MAX_CONTROL_MESSAGE_BYTES = 8192;

/** Most chunk indices one `nack` may list; a receiver missing more asks again later. */
export const MAX_NACK_CHUNKS = 256;

/** What a client or host id must match: 1 to 128 printable ASCII characters, no spaces. */
export const ID_PATTERN = /^[\x21-\x7e]{1,128}$/;

/** Why a loader refused a hello. */
export const RefusalReason = {
  /** The hello's protocol version is not one the loader speaks. */
  Version: 'version',
  /** The hello names another job than the loader serves (a client on the wrong subject). */
  Job: 'job',
  /** The hello names another rank than the loader serves. */
  Rank: 'rank',
  /** Another client (another clientId) holds the stream and was heard from recently. */
  Busy: 'busy',
  /** The resume point lies before the oldest item the loader still holds. */
  Resume: 'resume',
} as const;
export type RefusalReason = (typeof RefusalReason)[keyof typeof RefusalReason];

/** Trainer → loader on `hello`: opens a session. */
export interface Hello {
  readonly type: 'hello';
  readonly version: number;
  /** Chosen by the trainer, new for every hello, in [1, 2^32 − 1]; every later message of the session carries it. */
  readonly session: number;
  readonly job: string;
  readonly rank: number;
  /** Who the trainer is; a hello with the same clientId takes the stream over (a restarted trainer). */
  readonly clientId: string;
  /** The trainer's host (in Kubernetes the node name); shared memory needs the loader's to be equal (docs/protocol.md §12). */
  readonly hostId: string;
  /** Initial credit: how many batches the loader may send in this session before the next `credit`. */
  readonly credits: number;
  /** The first item the trainer needs, or null for "where my last ack left off". */
  readonly resume: Position | null;
  /** The trainer can read batches from shared-memory segments on its host (optional; absent: no). */
  readonly shm?: boolean;
}

/** Loader → trainer on `events`: the session is open; items follow from `next`. */
export interface Welcome {
  readonly type: 'welcome';
  readonly version: number;
  readonly session: number;
  readonly job: string;
  readonly rank: number;
  /** The first item of the session: the hello's resume point, or the loader's oldest unacked item. */
  readonly next: Position;
  /** The most batches the loader keeps unacked; larger grants are clamped to it. */
  readonly maxCredits: number;
  /** The largest batch the loader sends, in bytes. */
  readonly maxBatchBytes: number;
  readonly loaderId: string;
  readonly hostId: string;
  /**
   * How the session's batches travel: `nats` (chunk frames) or `shm` (descriptor frames naming
   * shared-memory segments; only when the hello offered it from the loader's host). Absent: `nats`.
   */
  readonly transport?: Transport;
}

/** How a session's batch bytes travel. */
export const Transport = { Nats: 'nats', Shm: 'shm' } as const;
export type Transport = (typeof Transport)[keyof typeof Transport];

/** Loader → trainer on `events`: the hello was refused. Readable whatever its `version`. */
export interface Refused {
  readonly type: 'refused';
  readonly version: number;
  readonly session: number;
  readonly reason: RefusalReason;
  /** A sentence for people, naming the values that did not match. */
  readonly message: string;
  /** The protocol versions the loader speaks. */
  readonly supportedVersions: readonly number[];
}

/** Trainer → loader on `ctl`: the loader may have sent `granted` batches in this session in all (cumulative). */
export interface Credit {
  readonly type: 'credit';
  readonly version: number;
  readonly session: number;
  readonly granted: number;
  /**
   * Seconds the trainer's consumer waited for batches in this session so far (cumulative,
   * optional): the loader turns it into its trainer-wait metric.
   */
  readonly waitedSeconds?: number;
}

/** Trainer → loader on `ctl`: every item up to and including `(epoch, step)` was consumed (cumulative). */
export interface Ack {
  readonly type: 'ack';
  readonly version: number;
  readonly session: number;
  readonly epoch: number;
  readonly step: number;
}

/** Trainer → loader on `ctl`: send the item at `(epoch, step)` again (only `chunks`, when given). */
export interface Nack {
  readonly type: 'nack';
  readonly version: number;
  readonly session: number;
  readonly epoch: number;
  readonly step: number;
  readonly chunks?: readonly number[];
}

/** Trainer → loader on `ctl`: the trainer leaves; the loader stops sending and keeps what is unacked. */
export interface Bye {
  readonly type: 'bye';
  readonly version: number;
  readonly session: number;
}

/** Loader → trainer on `events`: epoch `epoch` has `batches` batches; its end marker is at step `batches`. */
export interface EndOfEpoch {
  readonly type: 'end-of-epoch';
  readonly version: number;
  readonly session: number;
  readonly epoch: number;
  readonly batches: number;
}

/** Loader → trainer on `events`: the loader has no such session (it restarted); say hello again. */
export interface Reset {
  readonly type: 'reset';
  readonly version: number;
  readonly session: number;
  readonly reason: string;
}

export type TrainerMessage = Hello | Credit | Ack | Nack | Bye;
export type LoaderMessage = Welcome | Refused | EndOfEpoch | Reset;
export type ControlMessage = TrainerMessage | LoaderMessage;
export type ControlType = ControlMessage['type'];

const u32 = z.int().min(0).max(MAX_U32);
const sessionId = z.int().min(1).max(MAX_U32);
const version = z.literal(PROTOCOL_VERSION);
const token = z.string().max(63).regex(SUBJECT_TOKEN, 'must be a DNS label (lower-case letters, digits, inner hyphens)');
const id = z.string().max(128).regex(ID_PATTERN, 'must be 1 to 128 printable ASCII characters without spaces');
const position = z.object({ epoch: u32, step: u32 });

const schemas: { readonly [K in ControlType]: z.ZodType<Extract<ControlMessage, { type: K }>> } = {
  hello: z.object({
    type: z.literal('hello'),
    version,
    session: sessionId,
    job: token,
    rank: u32,
    clientId: id,
    hostId: id,
    credits: u32,
    resume: position.nullable(),
    shm: z.boolean().optional(),
  }),
  welcome: z.object({
    type: z.literal('welcome'),
    version,
    session: sessionId,
    job: token,
    rank: u32,
    next: position,
    maxCredits: u32,
    maxBatchBytes: u32,
    loaderId: id,
    hostId: id,
    transport: z.enum([Transport.Nats, Transport.Shm]).optional(),
  }),
  refused: z.object({
    type: z.literal('refused'),
    // Any version: a trainer must understand the refusal that tells it its version is wrong.
    version: z.int().min(0),
    session: sessionId,
    reason: z.enum(Object.values(RefusalReason) as [RefusalReason, ...RefusalReason[]]),
    message: z.string().max(1024),
    supportedVersions: z.array(u32).max(16),
  }),
  credit: z.object({
    type: z.literal('credit'),
    version,
    session: sessionId,
    granted: z.int().min(0),
    // At most ~31.7 years: a larger value is a bug or an attack, never a wait.
    waitedSeconds: z.number().min(0).max(1e9).optional(),
  }),
  ack: z.object({ type: z.literal('ack'), version, session: sessionId, epoch: u32, step: u32 }),
  nack: z.object({
    type: z.literal('nack'),
    version,
    session: sessionId,
    epoch: u32,
    step: u32,
    chunks: z.array(u32).min(1).max(MAX_NACK_CHUNKS).optional(),
  }),
  bye: z.object({ type: z.literal('bye'), version, session: sessionId }),
  'end-of-epoch': z.object({ type: z.literal('end-of-epoch'), version, session: sessionId, epoch: u32, batches: u32 }),
  reset: z.object({ type: z.literal('reset'), version, session: sessionId, reason: z.string().max(256) }),
};

/** The message types a trainer sends (the loader accepts only these). */
export const TRAINER_MESSAGE_TYPES = ['hello', 'credit', 'ack', 'nack', 'bye'] as const;
/** The message types a loader sends (the trainer accepts only these). */
export const LOADER_MESSAGE_TYPES = ['welcome', 'refused', 'end-of-epoch', 'reset'] as const;

/**
 * A control message of another protocol version. The loader answers such a hello with a
 * `refused` (reason `version`), so the error keeps the session it came with when it had one.
 */
export class VersionMismatchError extends FormatError {
  readonly version: unknown;
  readonly session: number | undefined;
  readonly messageType: string;
  constructor(messageType: string, version: unknown, session: number | undefined) {
    super(
      `control message "${messageType}": protocol version ${describeValue(version)} is not supported (this side speaks ${PROTOCOL_VERSION})`,
    );
    this.version = version;
    this.session = session;
    this.messageType = messageType;
  }
}

/** A short description of a received value for messages and logs (strings cut at 40 characters). */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : String(value);
}

const decoder = new TextDecoder('utf-8', { fatal: true });
const encoder = new TextEncoder();

/**
 * Parses and validates one control message whose type must be one of `accept`.
 * @throws FormatError naming the problem: over {@link MAX_CONTROL_MESSAGE_BYTES}, not UTF-8,
 * not JSON, not an object, a type outside `accept`, or a field that does not validate (the
 * message names the field); VersionMismatchError (a FormatError) for another protocol version.
 * @example
 * const msg = decodeControlMessage(m.data, ['credit', 'ack', 'nack', 'bye']);
 * if (msg.type === 'ack') window.ack(msg.session, msg, now);
 */
export function decodeControlMessage<K extends ControlType>(data: Uint8Array, accept: readonly K[]): Extract<ControlMessage, { type: K }> {
  if (!(data instanceof Uint8Array)) throw new FormatError('control message: must be bytes');
  if (data.byteLength > MAX_CONTROL_MESSAGE_BYTES) {
    throw new FormatError(`control message: ${data.byteLength} bytes is over the limit of ${MAX_CONTROL_MESSAGE_BYTES}`);
  }
  let text: string;
  try {
    text = decoder.decode(data);
  } catch (error) {
    throw new FormatError('control message: not valid UTF-8', { cause: error });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new FormatError(`control message: not JSON (${(error as Error).message})`, { cause: error });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new FormatError(`control message: must be a JSON object, got ${describeValue(value)}`);
  }
  const { type, version: v, session } = value as { type?: unknown; version?: unknown; session?: unknown };
  if (typeof type !== 'string' || !(accept as readonly string[]).includes(type)) {
    throw new FormatError(`control message: type ${describeValue(type)} is not one of ${accept.join(', ')}`);
  }
  if (type !== 'refused' && v !== PROTOCOL_VERSION) {
    const s = typeof session === 'number' && Number.isInteger(session) && session >= 1 && session <= MAX_U32 ? session : undefined;
    throw new VersionMismatchError(type, v, s);
  }
  const result = schemas[type as K].safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0];
    const field = issue === undefined || issue.path.length === 0 ? '' : ` field ${issue.path.join('.')}:`;
    throw new FormatError(`control message "${type}":${field} ${issue?.message ?? 'invalid'}`);
  }
  return result.data;
}

/**
 * Serializes a control message (validated first: a bug that would send an invalid message
 * throws here, not at the peer).
 * @throws FormatError naming the field that does not validate.
 */
export function encodeControlMessage(message: ControlMessage): Uint8Array {
  const result = schemas[message.type].safeParse(message);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new FormatError(`control message "${message.type}": field ${issue?.path.join('.') ?? '?'}: ${issue?.message ?? 'invalid'}`);
  }
  const bytes = encoder.encode(JSON.stringify(result.data));
  if (bytes.byteLength > MAX_CONTROL_MESSAGE_BYTES) {
    throw new FormatError(`control message "${message.type}": ${bytes.byteLength} bytes is over the limit of ${MAX_CONTROL_MESSAGE_BYTES}`);
  }
  return bytes;
}

/** A fresh session id in [1, 2^32 − 1], different from `previous`. */
export function newSessionId(previous = 0): number {
  for (;;) {
    const id = randomInt(1, MAX_U32 + 1);
    if (id !== previous) return id;
  }
}
