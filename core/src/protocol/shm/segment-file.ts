/**
 * The on-disk layout of one shared-memory segment: its file name and its fixed-size header.
 *
 * A segment is a file `shardline-<job>-<rank>-<ringId>-<slot>` (in `/dev/shm` by default) made of
 * a {@link HEADER_BYTES}-byte header followed by `capacity` data bytes. The header records who
 * owns the file (pid, the pid's start time and pid namespace, so a crashed owner's files can be
 * reclaimed and a live owner's never are) and which batch the data bytes hold (generation,
 * length, state, checksum), so a reader can tell a current descriptor from a stale one. All
 * integers are little-endian; a Python trainer reads the same layout with `struct`.
 *
 * Header (128 bytes):
 * | offset | type   | field                                                     |
 * |-------:|--------|-----------------------------------------------------------|
 * | 0      | 8 B    | magic `SHLDSHM1`                                          |
 * | 8      | u32    | layout version (1)                                        |
 * | 12     | u32    | header bytes (128): the data starts here                  |
 * | 16     | u32    | slot                                                      |
 * | 20     | u32    | owner pid                                                 |
 * | 24     | u64    | capacity (data bytes after the header)                    |
 * | 32     | u64    | generation of the batch in the slot (0: never written)    |
 * | 40     | u64    | length of that batch                                      |
 * | 48     | u32    | state: 0 empty, 1 writing, 2 ready                        |
 * | 52     | u32    | CRC-32 of the batch (0 when none was computed)            |
 * | 56     | u64    | owner start time (clock ticks since boot; 0 unknown)      |
 * | 64     | u64    | owner pid namespace inode (0 unknown)                     |
 * | 72     | 56 B   | reserved, zero                                            |
 */
import { ArgumentError, FormatError } from '../../errors.ts';
import { MAX_U32 } from '../position.ts';
import { requireRank, requireSubjectToken } from '../subjects.ts';

/** First bytes of every segment file. */
export const SEGMENT_MAGIC = 'SHLDSHM1';
/** The header layout this module writes and reads. */
export const SEGMENT_LAYOUT_VERSION = 1;
/** Size of the header; a batch's bytes start at this offset in the file. */
export const HEADER_BYTES = 128;
/** The largest slot capacity: batch lengths travel as u32 in the protocol (`maxBatchBytes`). */
export const MAX_SLOT_CAPACITY = MAX_U32;
/** The most slots a ring may have. */
export const MAX_SLOTS = 1024;

/** Prefix of every segment file name. */
export const SEGMENT_PREFIX = 'shardline';

/** What a ring id must match: 1 to 32 lower-case letters or digits (no hyphen, so names parse from the right). */
export const RING_ID_PATTERN = /^[a-z0-9]{1,32}$/;

/** The state of a slot's data, as its header says. */
export const SlotState = {
  /** Never written. */
  Empty: 0,
  /** A batch is being written; the data bytes are not to be trusted. */
  Writing: 1,
  /** The data bytes hold the batch of the header's generation. */
  Ready: 2,
} as const;
export type SlotState = (typeof SlotState)[keyof typeof SlotState];

/** Who created a segment file. */
export interface SegmentOwner {
  readonly pid: number;
  /** Start time of the process in clock ticks since boot (0 when unknown): tells a reused pid from the owner. */
  readonly startTicks: bigint;
  /** Inode of the owner's pid namespace (0 when unknown): a pid means nothing in another namespace. */
  readonly pidNamespace: bigint;
}

/** The decoded header of a segment file. */
export interface SegmentHeader {
  readonly slot: number;
  readonly owner: SegmentOwner;
  readonly capacity: number;
  readonly generation: number;
  readonly length: number;
  readonly state: SlotState;
  readonly crc32: number;
}

/** The parts of a segment file name. */
export interface SegmentName {
  readonly job: string;
  readonly rank: number;
  readonly ringId: string;
  readonly slot: number;
}

/** Checks a ring id; the ArgumentError names `what` and the value. */
export function requireRingId(what: string, value: unknown): string {
  if (typeof value !== 'string' || !RING_ID_PATTERN.test(value)) {
    const shown = typeof value === 'string' ? JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value) : String(value);
    throw new ArgumentError(what, `must be 1 to 32 lower-case letters or digits, got ${shown}`);
  }
  return value;
}

/**
 * The name shared by a ring's segment files, `shardline-<job>-<rank>-<ringId>`; descriptors carry it.
 * @throws ArgumentError when a token is not valid (so no name can contain `/`, `..` or NUL).
 */
export function ringName(job: string, rank: number, ringId: string): string {
  return `${SEGMENT_PREFIX}-${requireSubjectToken('job', job)}-${requireRank('rank', rank)}-${requireRingId('ringId', ringId)}`;
}

/** The file name of one slot of a ring: `<ringName>-<slot>`. */
export function segmentFileName(ring: string, slot: number): string {
  return `${ring}-${slot}`;
}

const DIGITS = /^(?:0|[1-9][0-9]{0,9})$/;

/**
 * Parses a segment file name, or returns undefined for any other name. Parsed from the right:
 * slot, ring id and rank have no hyphen, the job (a DNS label) may.
 */
export function parseSegmentFileName(name: string): SegmentName | undefined {
  if (!name.startsWith(`${SEGMENT_PREFIX}-`)) return undefined;
  const parts = name.slice(SEGMENT_PREFIX.length + 1).split('-');
  if (parts.length < 4) return undefined;
  const slotText = parts.pop() as string;
  const ringId = parts.pop() as string;
  const rankText = parts.pop() as string;
  const job = parts.join('-');
  if (!DIGITS.test(slotText) || !DIGITS.test(rankText) || !RING_ID_PATTERN.test(ringId)) return undefined;
  const slot = Number(slotText);
  const rank = Number(rankText);
  if (slot >= MAX_SLOTS || rank > MAX_U32) return undefined;
  try {
    requireSubjectToken('job', job);
  } catch {
    return undefined;
  }
  return { job, rank, ringId, slot };
}

/** Encodes a header into `into` (at least {@link HEADER_BYTES} bytes); reserved bytes become zero. */
export function encodeHeader(header: SegmentHeader, into: Buffer = Buffer.alloc(HEADER_BYTES)): Buffer {
  into.fill(0, 0, HEADER_BYTES);
  into.write(SEGMENT_MAGIC, 0, 'latin1');
  into.writeUInt32LE(SEGMENT_LAYOUT_VERSION, 8);
  into.writeUInt32LE(HEADER_BYTES, 12);
  into.writeUInt32LE(header.slot, 16);
  into.writeUInt32LE(header.owner.pid, 20);
  into.writeBigUInt64LE(BigInt(header.capacity), 24);
  into.writeBigUInt64LE(BigInt(header.generation), 32);
  into.writeBigUInt64LE(BigInt(header.length), 40);
  into.writeUInt32LE(header.state, 48);
  into.writeUInt32LE(header.crc32, 52);
  into.writeBigUInt64LE(header.owner.startTicks, 56);
  into.writeBigUInt64LE(header.owner.pidNamespace, 64);
  return into;
}

function safeU64(bytes: Buffer, offset: number, field: string, where: string): number {
  const value = bytes.readBigUInt64LE(offset);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new FormatError(`${where}: header field ${field} ${value} is not a safe integer`);
  return Number(value);
}

/**
 * Decodes and checks a segment header: magic, layout version, header size, state, and
 * `length ≤ capacity ≤` {@link MAX_SLOT_CAPACITY}. `where` names the file in errors.
 * @throws FormatError naming the field that is wrong.
 */
export function decodeHeader(bytes: Buffer, where: string): SegmentHeader {
  if (bytes.byteLength < HEADER_BYTES) throw new FormatError(`${where}: the header has ${bytes.byteLength} bytes, expected ${HEADER_BYTES}`);
  const magic = bytes.toString('latin1', 0, 8);
  if (magic !== SEGMENT_MAGIC) throw new FormatError(`${where}: not a Shardline segment (magic ${JSON.stringify(magic)}, expected ${JSON.stringify(SEGMENT_MAGIC)})`);
  const version = bytes.readUInt32LE(8);
  if (version !== SEGMENT_LAYOUT_VERSION) throw new FormatError(`${where}: segment layout version ${version} is not supported (expected ${SEGMENT_LAYOUT_VERSION})`);
  const headerBytes = bytes.readUInt32LE(12);
  if (headerBytes !== HEADER_BYTES) throw new FormatError(`${where}: header size ${headerBytes} is not ${HEADER_BYTES}`);
  const state = bytes.readUInt32LE(48);
  if (state !== SlotState.Empty && state !== SlotState.Writing && state !== SlotState.Ready) {
    throw new FormatError(`${where}: slot state ${state} is not 0, 1 or 2`);
  }
  const capacity = safeU64(bytes, 24, 'capacity', where);
  if (capacity < 1 || capacity > MAX_SLOT_CAPACITY) throw new FormatError(`${where}: capacity ${capacity} is not in [1, ${MAX_SLOT_CAPACITY}]`);
  const length = safeU64(bytes, 40, 'length', where);
  if (length > capacity) throw new FormatError(`${where}: batch length ${length} is over the slot capacity ${capacity}`);
  return {
    slot: bytes.readUInt32LE(16),
    owner: { pid: bytes.readUInt32LE(20), startTicks: bytes.readBigUInt64LE(56), pidNamespace: bytes.readBigUInt64LE(64) },
    capacity,
    generation: safeU64(bytes, 32, 'generation', where),
    length,
    state: state as SlotState,
    crc32: bytes.readUInt32LE(52),
  };
}
