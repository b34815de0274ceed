/**
 * Binary frames that carry batch bytes on a rank's `data` subject (docs/protocol.md, "Data
 * frames"). A batch larger than what one NATS message may hold is cut into chunks of `chunkSize`
 * bytes (the last one shorter); every frame is a fixed little-endian prefix naming the session,
 * job, rank, epoch, step and the chunk's place, then the chunk's bytes. The layout is fully
 * determined by (chunk index, chunk count, chunk size, total bytes), so a receiver checks each
 * frame exactly and a torn or hostile frame is a FormatError, never a hole in a batch.
 */
import { ArgumentError, FormatError } from '../errors.ts';
import { MAX_U32 } from './position.ts';
import { parseSegmentDescriptor, type SegmentDescriptor } from './shm/descriptor.ts';
import { SUBJECT_TOKEN } from './subjects.ts';

/** First bytes of every frame: ASCII `SL`. */
export const FRAME_MAGIC = 0x4c53; // read little-endian: 0x53 'S', 0x4c 'L'
/** The `kind` byte of a batch chunk. */
export const FRAME_KIND_CHUNK = 1;
/** The `kind` byte of a shared-memory descriptor frame (sessions whose welcome said `transport: "shm"`). */
export const FRAME_KIND_SHM = 2;
/** Largest descriptor a shared-memory frame may carry, in bytes (a real one is under 200). */
export const MAX_SHM_DESCRIPTOR_BYTES = 512;
/** Bytes of the prefix before the job name. */
export const FRAME_FIXED_BYTES = 37;

/** The header fields of one frame. */
export interface ChunkHeader {
  readonly session: number;
  readonly job: string;
  readonly rank: number;
  readonly epoch: number;
  readonly step: number;
  /** Which chunk, in [0, count). */
  readonly index: number;
  /** How many chunks the batch has (1 for a batch that fits in one message). */
  readonly count: number;
  /** Bytes of every chunk but the last (0 only for an empty batch). */
  readonly chunkSize: number;
  /** Bytes of the whole batch. */
  readonly totalBytes: number;
}

/** A decoded frame; `payload` is a view into the message bytes (copy it to keep it). */
export interface ChunkFrame extends ChunkHeader {
  readonly payload: Uint8Array;
}

/** The header of a shared-memory frame: a batch's place and size (it is one chunk). */
export type ShmFrameHeader = Omit<ChunkHeader, 'index' | 'count' | 'chunkSize'>;

/** A decoded shared-memory frame: where the batch is, and the segment that holds its bytes. */
export interface ShmFrame extends ShmFrameHeader {
  readonly descriptor: SegmentDescriptor;
}

/** How a batch of `totalBytes` is cut. */
export interface ChunkLayout {
  readonly count: number;
  readonly chunkSize: number;
}

/** Bytes of a frame's prefix for `job`. */
export function frameHeaderBytes(job: string): number {
  return FRAME_FIXED_BYTES + job.length;
}

/**
 * Cuts `totalBytes` into as few chunks of at most `maxChunkBytes` as possible; an empty batch
 * is one empty chunk.
 * @example
 * chunkLayout(10, 4) // { count: 3, chunkSize: 4 }: chunks of 4, 4 and 2 bytes
 */
export function chunkLayout(totalBytes: number, maxChunkBytes: number): ChunkLayout {
  if (!Number.isInteger(totalBytes) || totalBytes < 0 || totalBytes > MAX_U32) {
    throw new ArgumentError('totalBytes', `must be an integer in [0, ${MAX_U32}], got ${totalBytes}`);
  }
  if (!Number.isInteger(maxChunkBytes) || maxChunkBytes < 1) {
    throw new ArgumentError('maxChunkBytes', `must be an integer ≥ 1, got ${maxChunkBytes}`);
  }
  if (totalBytes === 0) return { count: 1, chunkSize: 0 };
  if (totalBytes <= maxChunkBytes) return { count: 1, chunkSize: totalBytes };
  return { count: Math.ceil(totalBytes / maxChunkBytes), chunkSize: maxChunkBytes };
}

/** Byte range [begin, end) of chunk `index` within the batch. */
export function chunkRange(header: Pick<ChunkHeader, 'index' | 'chunkSize' | 'totalBytes'>): [number, number] {
  const begin = header.index * header.chunkSize;
  return [begin, Math.min(begin + header.chunkSize, header.totalBytes)];
}

/**
 * One frame: the prefix for `header` followed by chunk `header.index` of `batch` (a fresh
 * buffer, so the caller may reuse `batch` and the transport may hold the frame).
 */
export function encodeChunkFrame(header: ChunkHeader, batch: Uint8Array): Uint8Array {
  if (batch.byteLength !== header.totalBytes) {
    throw new ArgumentError('batch', `has ${batch.byteLength} bytes, the header says ${header.totalBytes}`);
  }
  checkHeader(header, (why) => new ArgumentError('header', why));
  const [begin, end] = chunkRange(header);
  const frame = framePrefix(FRAME_KIND_CHUNK, header, end - begin);
  frame.set(batch.subarray(begin, end), frameHeaderBytes(header.job));
  return frame;
}

/**
 * A shared-memory frame: the prefix of a one-chunk batch of `header.totalBytes` bytes, then the
 * descriptor of the segment that holds them (JSON, at most {@link MAX_SHM_DESCRIPTOR_BYTES}).
 */
export function encodeShmFrame(header: ShmFrameHeader, descriptor: SegmentDescriptor): Uint8Array {
  const full = { ...header, index: 0, count: 1, chunkSize: header.totalBytes };
  checkHeader(full, (why) => new ArgumentError('header', why));
  if (descriptor.length !== header.totalBytes) {
    throw new ArgumentError('descriptor', `names ${descriptor.length} bytes, the header says ${header.totalBytes}`);
  }
  const json = new TextEncoder().encode(JSON.stringify(descriptor));
  if (json.byteLength > MAX_SHM_DESCRIPTOR_BYTES) throw new ArgumentError('descriptor', `${json.byteLength} bytes of JSON is over ${MAX_SHM_DESCRIPTOR_BYTES}`);
  const frame = framePrefix(FRAME_KIND_SHM, full, json.byteLength);
  frame.set(json, frameHeaderBytes(header.job));
  return frame;
}

/** A frame's prefix for `header`, with room for `payloadBytes` after it. */
function framePrefix(kind: number, header: ChunkHeader, payloadBytes: number): Uint8Array {
  const frame = new Uint8Array(frameHeaderBytes(header.job) + payloadBytes);
  writePrefix(frame, kind, header);
  return frame;
}

/** Writes a frame's prefix for `header` at the start of `frame`. */
function writePrefix(frame: Uint8Array, kind: number, header: ChunkHeader): void {
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  view.setUint16(0, FRAME_MAGIC, true);
  view.setUint8(2, 1);
  view.setUint8(3, kind);
  view.setUint32(4, header.session, true);
  view.setUint32(8, header.rank, true);
  view.setUint32(12, header.epoch, true);
  view.setUint32(16, header.step, true);
  view.setUint32(20, header.index, true);
  view.setUint32(24, header.count, true);
  view.setUint32(28, header.chunkSize, true);
  view.setUint32(32, header.totalBytes, true);
  view.setUint8(36, header.job.length);
  for (let i = 0; i < header.job.length; i++) frame[FRAME_FIXED_BYTES + i] = header.job.charCodeAt(i);
}

/**
 * A batch held as its data frames for one chunk size, each chunk right behind its frame prefix
 * in one buffer: publishing a frame is a view and a 4-byte session write, not a copy. The loader
 * keeps an unacked batch this way (built once, from the caller's bytes, in place of a plain copy).
 * A session with another chunk size (a server with another max_payload) gets its frames from
 * {@link FramedBatch.bytes} instead.
 */
export class FramedBatch {
  readonly totalBytes: number;
  readonly count: number;
  readonly chunkSize: number;
  readonly #buffer: Uint8Array;
  readonly #prefix: number;

  private constructor(buffer: Uint8Array, prefix: number, layout: ChunkLayout, totalBytes: number) {
    this.#buffer = buffer;
    this.#prefix = prefix;
    this.count = layout.count;
    this.chunkSize = layout.chunkSize;
    this.totalBytes = totalBytes;
  }

  /** Lays `bytes` out as the frames of `scope`'s batch in chunks of at most `maxChunkBytes` (copying them once). */
  static build(scope: Pick<ChunkHeader, 'job' | 'rank' | 'epoch' | 'step'>, bytes: Uint8Array, maxChunkBytes: number): FramedBatch {
    const layout = chunkLayout(bytes.byteLength, maxChunkBytes);
    const prefix = frameHeaderBytes(scope.job);
    const buffer = new Uint8Array(layout.count * prefix + bytes.byteLength);
    const batch = new FramedBatch(buffer, prefix, layout, bytes.byteLength);
    for (let index = 0; index < layout.count; index++) {
      const header = { ...scope, session: 1, index, count: layout.count, chunkSize: layout.chunkSize, totalBytes: bytes.byteLength };
      checkHeader(header, (why) => new ArgumentError('header', why));
      const [begin, end] = chunkRange(header);
      const at = batch.#start(index);
      writePrefix(buffer.subarray(at, at + prefix), FRAME_KIND_CHUNK, header);
      buffer.set(bytes.subarray(begin, end), at + prefix);
    }
    return batch;
  }

  /** Whether this layout is the one `maxChunkBytes` gives (the frames fit the session). */
  fits(maxChunkBytes: number): boolean {
    const { count, chunkSize } = chunkLayout(this.totalBytes, maxChunkBytes);
    return count === this.count && chunkSize === this.chunkSize;
  }

  /**
   * Frame `index` for `session`: a view of the held bytes whose session field is set now (a view
   * handed out earlier for another session changes with it; the transport has copied it by then).
   */
  frame(index: number, session: number): Uint8Array {
    if (!Number.isInteger(index) || index < 0 || index >= this.count) throw new ArgumentError('index', `must be in [0, ${this.count}), got ${index}`);
    const at = this.#start(index);
    const [begin, end] = chunkRange({ index, chunkSize: this.chunkSize, totalBytes: this.totalBytes });
    const frame = this.#buffer.subarray(at, at + this.#prefix + (end - begin));
    new DataView(frame.buffer, frame.byteOffset, 8).setUint32(4, session, true);
    return frame;
  }

  /** The batch's bytes, gathered from its frames (a copy). */
  bytes(): Uint8Array {
    const out = new Uint8Array(this.totalBytes);
    for (let index = 0; index < this.count; index++) {
      const [begin, end] = chunkRange({ index, chunkSize: this.chunkSize, totalBytes: this.totalBytes });
      const at = this.#start(index) + this.#prefix;
      out.set(this.#buffer.subarray(at, at + (end - begin)), begin);
    }
    return out;
  }

  #start(index: number): number {
    return index * (this.#prefix + this.chunkSize);
  }
}

/**
 * Reads one frame. Never throws anything but a FormatError, whatever the bytes.
 * @throws FormatError naming the field: a short frame, a wrong magic, version or kind, a job
 * that is not a DNS label, a chunk index outside [0, count), a count or chunk size that does not
 * match the total, or a payload of the wrong length.
 */
export function decodeChunkFrame(data: Uint8Array): ChunkFrame {
  const { header, payload, kind } = decodePrefix(data);
  if (kind !== FRAME_KIND_CHUNK) throw new FormatError(`data frame: kind ${kind} is not a batch chunk (1)`);
  const [begin, end] = chunkRange(header);
  if (payload.byteLength !== end - begin) {
    throw new FormatError(
      `data frame: chunk ${header.index} of ${header.count} must carry ${end - begin} bytes, got ${payload.byteLength}`,
    );
  }
  return { ...header, payload };
}

/**
 * Reads a shared-memory frame: the batch's place and size, and the descriptor of the segment
 * that holds it (checked by parseSegmentDescriptor; the length must be the header's).
 * @throws FormatError naming what is wrong, whatever the bytes.
 */
export function decodeShmFrame(data: Uint8Array): ShmFrame {
  const { header, payload, kind } = decodePrefix(data);
  if (kind !== FRAME_KIND_SHM) throw new FormatError(`data frame: kind ${kind} is not a shared-memory descriptor (2)`);
  if (header.count !== 1) throw new FormatError(`data frame: a shared-memory frame must say 1 chunk, got ${header.count}`);
  if (payload.byteLength > MAX_SHM_DESCRIPTOR_BYTES) {
    throw new FormatError(`data frame: a ${payload.byteLength}-byte descriptor is over ${MAX_SHM_DESCRIPTOR_BYTES} bytes`);
  }
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload));
  } catch (error) {
    throw new FormatError(`data frame: the shared-memory descriptor is not JSON (${(error as Error).message})`, { cause: error });
  }
  const descriptor = parseSegmentDescriptor(value);
  if (descriptor.length !== header.totalBytes) {
    throw new FormatError(`data frame: the descriptor names ${descriptor.length} bytes, the header says ${header.totalBytes}`);
  }
  const { session, job, rank, epoch, step, totalBytes } = header;
  return { session, job, rank, epoch, step, totalBytes, descriptor };
}

/** The `kind` byte of a frame (0 when it is too short to have one); decode it with the kind's function. */
export function frameKind(data: Uint8Array): number {
  return data instanceof Uint8Array && data.byteLength >= 4 ? data[3]! : 0;
}

function decodePrefix(data: Uint8Array): { header: ChunkHeader; payload: Uint8Array; kind: number } {
  if (!(data instanceof Uint8Array)) throw new FormatError('data frame: must be bytes');
  if (data.byteLength < FRAME_FIXED_BYTES) {
    throw new FormatError(`data frame: ${data.byteLength} bytes is shorter than the ${FRAME_FIXED_BYTES}-byte prefix`);
  }
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (view.getUint16(0, true) !== FRAME_MAGIC) throw new FormatError('data frame: does not start with "SL"');
  const version = view.getUint8(2);
  if (version !== 1) throw new FormatError(`data frame: protocol version ${version} is not supported (this side speaks 1)`);
  const kind = view.getUint8(3);
  if (kind !== FRAME_KIND_CHUNK && kind !== FRAME_KIND_SHM) {
    throw new FormatError(`data frame: kind ${kind} is unknown (1 is a batch chunk, 2 a shared-memory descriptor)`);
  }
  const jobLength = view.getUint8(36);
  const prefix = FRAME_FIXED_BYTES + jobLength;
  if (data.byteLength < prefix) {
    throw new FormatError(`data frame: ${data.byteLength} bytes is shorter than its ${prefix}-byte prefix`);
  }
  let job = '';
  for (let i = FRAME_FIXED_BYTES; i < prefix; i++) job += String.fromCharCode(data[i]!);
  const header: ChunkHeader = {
    session: view.getUint32(4, true),
    job,
    rank: view.getUint32(8, true),
    epoch: view.getUint32(12, true),
    step: view.getUint32(16, true),
    index: view.getUint32(20, true),
    count: view.getUint32(24, true),
    chunkSize: view.getUint32(28, true),
    totalBytes: view.getUint32(32, true),
  };
  checkHeader(header, (why) => new FormatError(`data frame: ${why}`));
  return { header, payload: data.subarray(prefix), kind };
}

function checkHeader(h: ChunkHeader, fail: (why: string) => Error): void {
  if (typeof h.job !== 'string' || !SUBJECT_TOKEN.test(h.job)) {
    throw fail(`job ${JSON.stringify(h.job)} is not a DNS label`);
  }
  for (const key of ['session', 'rank', 'epoch', 'step', 'index', 'count', 'chunkSize', 'totalBytes'] as const) {
    const v = h[key];
    if (!Number.isInteger(v) || v < 0 || v > MAX_U32) throw fail(`${key} must be an integer in [0, ${MAX_U32}], got ${v}`);
  }
  if (h.session === 0) throw fail('session must not be 0');
  const expected = h.totalBytes === 0 ? 1 : h.chunkSize === 0 ? -1 : Math.ceil(h.totalBytes / h.chunkSize);
  if (h.totalBytes === 0 && h.chunkSize !== 0) throw fail(`chunkSize must be 0 for an empty batch, got ${h.chunkSize}`);
  if (h.count !== expected) {
    throw fail(`count ${h.count} does not match totalBytes ${h.totalBytes} in chunks of ${h.chunkSize} bytes`);
  }
  if (h.index >= h.count) throw fail(`index ${h.index} is outside [0, ${h.count})`);
}
