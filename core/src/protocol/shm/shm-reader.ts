/**
 * The trainer's end of the shared-memory transport: reads the batch a {@link SegmentDescriptor}
 * names from its ring's segment file. A descriptor comes over the network and is hostile until
 * checked: its ring must be of the reader's job and rank, the file a regular file (no symlink),
 * the bytes within the slot, and the generation the one the slot's header holds, checked before
 * and after the bytes are read (the ring's seqlock, see shm-ring.ts), so a stale descriptor is an
 * error and never silently yields a newer batch. The bytes are copied out by a positional read:
 * Node has no safe `mmap`, and a copy cannot change under the caller after the slot is released.
 * The files of the current ring stay open between reads (checked once when opened), so a read is
 * two positional reads; call close() when done.
 */
import { constants as fsConstants, readSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { ArgumentError, FormatError } from '../../errors.ts';
import { requireRank, requireSubjectToken } from '../subjects.ts';
import { parseSegmentDescriptor, type SegmentDescriptor } from './descriptor.ts';
import { decodeHeader, HEADER_BYTES, parseSegmentFileName, segmentFileName, SlotState, type SegmentHeader } from './segment-file.ts';

/** Options of {@link ShmReader}. */
export interface ShmReaderOptions {
  /** The job whose rings the reader may open (a DNS label). */
  readonly job: string;
  /** The rank whose rings the reader may open. */
  readonly rank: number;
  /** Where the segment files live. Default `/dev/shm`. */
  readonly directory?: string;
}

/**
 * The slot no longer holds (or does not yet hold) the batch the descriptor names: it was
 * released and rewritten, possibly while it was being read. The batch must come again.
 */
export class StaleDescriptorError extends FormatError {
  /** The generation the descriptor names. */
  readonly expected: number;
  /** The generation the slot's header holds. */
  readonly found: number;
  constructor(where: string, expected: number, found: number, detail: string) {
    super(`${where}: stale descriptor: it names generation ${expected} but the slot holds generation ${found}${detail}`);
    this.expected = expected;
    this.found = found;
  }
}

const READ_NOFOLLOW = fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW;

/** Batches up to this size (with their header) are read synchronously. */
const SYNC_READ_BYTES = 4 * 1024 * 1024 + HEADER_BYTES;

function readFullySync(fd: number, into: Buffer, position: number, where: string): void {
  let done = 0;
  while (done < into.byteLength) {
    const read = readSync(fd, into, done, into.byteLength - done, position + done);
    if (read === 0) throw new FormatError(`${where}: truncated: ${done} of ${into.byteLength} bytes at offset ${position}`);
    done += read;
  }
}

function readHeaderSync(fd: number, where: string): Buffer {
  const bytes = Buffer.alloc(HEADER_BYTES);
  readFullySync(fd, bytes, 0, where);
  return bytes;
}

async function readFully(handle: FileHandle, into: Buffer, position: number, where: string): Promise<void> {
  let done = 0;
  while (done < into.byteLength) {
    const { bytesRead } = await handle.read(into, done, into.byteLength - done, position + done);
    if (bytesRead === 0) throw new FormatError(`${where}: truncated: ${done} of ${into.byteLength} bytes at offset ${position}`);
    done += bytesRead;
  }
}

/**
 * Reads batches out of a job's and rank's shared-memory rings by descriptor.
 * @example
 * const reader = new ShmReader({ job: 'mnist', rank: 0 });
 * const bytes = await reader.read(JSON.parse(message));  // FormatError for a hostile or stale descriptor
 * train(decodeBatch(bytes));
 * ack();                                                 // the loader then releases the slot
 */
export class ShmReader {
  readonly job: string;
  readonly rank: number;
  readonly directory: string;
  /** Open segment files of the current ring, by file name. */
  readonly #open = new Map<string, Promise<FileHandle>>();
  #ring: string | undefined;

  constructor(options: ShmReaderOptions) {
    if (typeof options !== 'object' || options === null) throw new ArgumentError('options', 'must be an object');
    this.job = requireSubjectToken('job', options.job);
    this.rank = requireRank('rank', options.rank);
    const directory = options.directory ?? '/dev/shm';
    if (typeof directory !== 'string' || directory.length === 0) throw new ArgumentError('directory', 'must be a non-empty path');
    this.directory = directory;
  }

  /**
   * Returns a copy of the batch `descriptor` names.
   * @throws FormatError when the descriptor is malformed, of another job or rank, names a
   * missing file or bytes outside the slot, or the checksum does not match;
   * StaleDescriptorError (a FormatError) when the slot holds another generation.
   */
  async read(descriptor: SegmentDescriptor | unknown): Promise<Buffer> {
    const d = parseSegmentDescriptor(descriptor);
    const fileName = segmentFileName(d.ring, d.slot);
    const name = parseSegmentFileName(fileName);
    if (name === undefined || name.job !== this.job || name.rank !== this.rank) {
      throw new FormatError(`segment descriptor: ring ${JSON.stringify(d.ring)} is not of job ${this.job} rank ${this.rank}`);
    }
    const where = `segment ${fileName}`;
    const handle = await this.#handle(d.ring, fileName, where);
    try {
      // Header and bytes in one read; the header is read again after, for the seqlock.
      const both = Buffer.allocUnsafe(HEADER_BYTES + d.length);
      // Up to SYNC_READ_BYTES synchronously: a tmpfs read that small costs less than a thread-pool round trip.
      if (both.byteLength <= SYNC_READ_BYTES) readFullySync(handle.fd, both, 0, where);
      else await readFully(handle, both, 0, where);
      const header = decodeHeader(both.subarray(0, HEADER_BYTES), where);
      this.#check(d, header, where);
      const bytes = both.subarray(HEADER_BYTES);
      // The 128-byte re-read is synchronous: on tmpfs, cheaper than a trip through the thread pool.
      const after = decodeHeader(readHeaderSync(handle.fd, where), where);
      if (after.generation !== header.generation || after.state !== SlotState.Ready) {
        throw new StaleDescriptorError(where, d.generation, after.generation, ' (it was rewritten while being read)');
      }
      if (d.checksum !== undefined && crc32(bytes) !== d.checksum) {
        throw new FormatError(`${where}: the batch's CRC-32 ${crc32(bytes)} does not match the descriptor's ${d.checksum}`);
      }
      return bytes;
    } catch (error) {
      await this.#forget(fileName);
      throw error;
    }
  }

  /** Closes the segment files the reader keeps open. The reader stays usable (it opens them again). */
  async close(): Promise<void> {
    const open = [...this.#open.values()];
    this.#open.clear();
    this.#ring = undefined;
    await Promise.allSettled(open.map(async (h) => (await h).close()));
  }

  /**
   * The open file of a segment: opened once (no symlinks, a regular file as large as its header
   * says) and kept while descriptors name its ring, so a read costs two positional reads.
   */
  #handle(ring: string, fileName: string, where: string): Promise<FileHandle> {
    if (this.#ring !== ring) {
      // A new ring (the loader restarted): the old one's files are closed so their memory is freed.
      void this.close();
      this.#ring = ring;
    }
    let handle = this.#open.get(fileName);
    if (handle === undefined) {
      handle = this.#openSegment(fileName, where);
      this.#open.set(fileName, handle);
      handle.catch(() => this.#open.delete(fileName));
    }
    return handle;
  }

  async #openSegment(fileName: string, where: string): Promise<FileHandle> {
    let handle: FileHandle;
    try {
      handle = await open(join(this.directory, fileName), READ_NOFOLLOW);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new FormatError(`${where} does not exist in ${this.directory} (the ring was closed, or the descriptor is wrong)`, { cause: error });
      if (code === 'ELOOP') throw new FormatError(`${where} is a symbolic link, not a segment`, { cause: error });
      throw error;
    }
    try {
      const stat = await handle.stat();
      if (!stat.isFile()) throw new FormatError(`${where} is not a regular file`);
      const header = await this.#header(handle, where);
      if (HEADER_BYTES + header.capacity > stat.size) {
        throw new FormatError(`${where}: the file has ${stat.size} bytes, less than the ${HEADER_BYTES + header.capacity} of its header and capacity`);
      }
      return handle;
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  /** Closes a segment after a failed read, so the next read opens and checks it afresh. */
  async #forget(fileName: string): Promise<void> {
    const handle = this.#open.get(fileName);
    this.#open.delete(fileName);
    await handle?.then((h) => h.close()).catch(() => {});
  }

  async #header(handle: FileHandle, where: string): Promise<SegmentHeader> {
    const bytes = Buffer.alloc(HEADER_BYTES);
    await readFully(handle, bytes, 0, where);
    return decodeHeader(bytes, where);
  }

  #check(d: SegmentDescriptor, header: SegmentHeader, where: string): void {
    if (header.slot !== d.slot) throw new FormatError(`${where}: the header is of slot ${header.slot}, the descriptor names slot ${d.slot}`);
    if (header.generation !== d.generation) {
      const detail = header.generation < d.generation ? ' (the descriptor is from the future: forged, or of an older ring of that name)' : ' (the batch was released and the slot rewritten)';
      throw new StaleDescriptorError(where, d.generation, header.generation, detail);
    }
    if (header.state !== SlotState.Ready) throw new StaleDescriptorError(where, d.generation, header.generation, ' (being rewritten)');
    if (d.offset !== HEADER_BYTES || d.length !== header.length) {
      throw new FormatError(
        `${where}: the descriptor names bytes [${d.offset}, ${d.offset + d.length}) but the slot holds a batch at [${HEADER_BYTES}, ${HEADER_BYTES + header.length})`,
      );
    }
    if (d.checksum !== undefined && d.checksum !== header.crc32) {
      throw new FormatError(`${where}: the descriptor's checksum ${d.checksum} is not the slot's ${header.crc32}`);
    }
  }
}
