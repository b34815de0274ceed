/**
 * The loader's end of the shared-memory transport: a ring of N segment files of fixed capacity,
 * in `/dev/shm` by default. `write()` copies a batch into a free slot and returns a
 * {@link SegmentDescriptor} small enough for a NATS message; the trainer reads the bytes with
 * ShmReader, and `release()` frees the slot when the trainer acked the batch. With every slot in
 * use, `write()` waits for a release (bounded memory: at most N × capacity bytes), and an
 * AbortSignal ends the wait.
 *
 * A slot is rewritten as a seqlock: the header first says "writing" with the next generation,
 * then the data is written, then the header says "ready". A reader that checks the header
 * before and after reading the data therefore never takes half-written or newer bytes for the
 * batch its descriptor names.
 *
 * Segments are removed by close(), and on process exit (exit-cleanup.ts). Segments that a
 * crashed run left behind (their owner process is certainly dead) are reclaimed when a ring is
 * created; a live owner's segments are never touched.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsConstants, unlinkSync, writeSync } from 'node:fs';
import { type FileHandle, lstat, open, readdir, statfs, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { AbortError, ArgumentError, ClosedError, FormatError } from '../../errors.ts';
import { requireInt, requirePositiveInt } from '../../validate.ts';
import type { CallOptions } from '../batch-transport.ts';
import { onAbort, withoutUndefined } from '../options.ts';
import { parseSegmentDescriptor, type SegmentDescriptor } from './descriptor.ts';
import { onProcessExit } from './exit-cleanup.ts';
import { currentOwner, ownerState, type OwnerState } from './owner.ts';
import {
  decodeHeader,
  encodeHeader,
  HEADER_BYTES,
  MAX_SLOT_CAPACITY,
  MAX_SLOTS,
  parseSegmentFileName,
  requireRingId,
  ringName,
  segmentFileName,
  SlotState,
} from './segment-file.ts';

/** Options of {@link ShmRing.create}. */
export interface ShmRingOptions {
  /** The DataLoaderJob's name (a DNS label). */
  readonly job: string;
  /** The trainer rank the ring delivers to. */
  readonly rank: number;
  /** How many segment files (batches in flight at most), in [1, 1024]. */
  readonly slots: number;
  /** Capacity of each slot in bytes: the largest batch the ring takes, in [1, 2^32 − 1]. */
  readonly slotBytes: number;
  /** Where the segment files live. Default `/dev/shm`. */
  readonly directory?: string;
  /** Names this ring among the rank's rings (1 to 32 of `a-z0-9`). Default: 16 random hex digits. */
  readonly ringId?: string;
  /** Whether descriptors carry a CRC-32 of the batch that the reader verifies. Default true. */
  readonly checksum?: boolean;
  /** Permission bits of the segment files. Default 0o600 (the trainer runs as the same user). */
  readonly fileMode?: number;
  /** Whether create() refuses a ring larger than the free space of `directory`. Default true. */
  readonly checkSpace?: boolean;
}

/** The options with every default applied. */
export type ResolvedShmRingOptions = Required<ShmRingOptions>;

/** Defaults of {@link ShmRingOptions} (the ring id is drawn anew by each call). */
export function shmRingDefaults(): Omit<ResolvedShmRingOptions, 'job' | 'rank' | 'slots' | 'slotBytes'> {
  return { directory: '/dev/shm', ringId: randomBytes(8).toString('hex'), checksum: true, fileMode: 0o600, checkSpace: true };
}

/** What {@link reclaimSegments} did with each segment file of a directory. */
export interface ReclaimReport {
  /** Files removed: their owner process is dead. */
  readonly removed: readonly string[];
  /** Files left alone, with the reason (a live or unknown owner, an unreadable header, an error). */
  readonly kept: readonly { readonly name: string; readonly reason: string }[];
}

const READ_NOFOLLOW = fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW;
const CREATE_EXCLUSIVE = fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW;

/**
 * Removes the segment files in `directory` whose owner process is certainly dead (a crashed
 * loader's). Files of live owners, of owners in another pid namespace, files that are not
 * regular files or whose header cannot be read are kept. Never throws for a single file.
 * @example
 * const { removed } = await reclaimSegments('/dev/shm');
 */
export async function reclaimSegments(directory: string): Promise<ReclaimReport> {
  const removed: string[] = [];
  const kept: { name: string; reason: string }[] = [];
  const names = (await readdir(directory)).filter((name) => parseSegmentFileName(name) !== undefined).sort();
  const here = currentOwner();
  for (const name of names) {
    const path = join(directory, name);
    let state: OwnerState;
    try {
      if (!(await lstat(path)).isFile()) {
        kept.push({ name, reason: 'not a regular file' });
        continue;
      }
      const handle = await open(path, READ_NOFOLLOW);
      try {
        const bytes = Buffer.alloc(HEADER_BYTES);
        await handle.read(bytes, 0, HEADER_BYTES, 0);
        state = ownerState(decodeHeader(bytes, path).owner, here);
      } finally {
        await handle.close();
      }
      if (state !== 'dead') {
        kept.push({ name, reason: `owner is ${state === 'alive' ? 'alive' : 'in another pid namespace'}` });
        continue;
      }
      await unlink(path);
      removed.push(name);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      // Another process reclaimed it first: it is gone, as wanted.
      if (code === 'ENOENT') continue;
      kept.push({ name, reason: error instanceof FormatError ? error.message : `${code ?? 'error'}: ${(error as Error).message}` });
    }
  }
  return { removed, kept };
}

interface Slot {
  readonly index: number;
  readonly path: string;
  readonly handle: FileHandle;
  /** The generation of the batch last written (or being written). */
  generation: number;
  /** Whether a write holds the slot or a descriptor for it is out. */
  inUse: boolean;
  /** Whether the descriptor of `generation` was handed out (so release() may free it). */
  issued: boolean;
}

interface Waiter {
  resolve(slot: Slot): void;
  reject(error: Error): void;
  cleanup(): void;
}

/** Batches up to this size are written to their slot synchronously (larger ones through the thread pool, not to block the loop). */
const SYNC_WRITE_BYTES = 4 * 1024 * 1024;

function writeFullySync(fd: number, bytes: Uint8Array, position: number): void {
  let done = 0;
  while (done < bytes.byteLength) {
    const written = writeSync(fd, bytes, done, bytes.byteLength - done, position + done);
    if (written <= 0) throw new Error(`wrote 0 bytes at offset ${position + done}`);
    done += written;
  }
}

async function writeFully(handle: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.byteLength) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.byteLength - done, position + done);
    if (bytesWritten <= 0) throw new Error(`wrote 0 bytes at offset ${position + done}`);
    done += bytesWritten;
  }
}

/**
 * A ring of shared-memory segment files that a loader writes batches into.
 * @example
 * const ring = await ShmRing.create({ job: 'mnist', rank: 0, slots: 4, slotBytes: 64 << 20 });
 * const descriptor = await ring.write(batchBytes, { signal });  // waits while all 4 slots are in use
 * publish(JSON.stringify(descriptor));                           // the trainer reads it with ShmReader
 * // … when the trainer acked the batch:
 * ring.release(descriptor);
 * await ring.close();                                            // removes the segment files
 */
export class ShmRing {
  /** The ring's name, `shardline-<job>-<rank>-<ringId>`; descriptors carry it. */
  readonly name: string;
  readonly options: ResolvedShmRingOptions;
  /** What create() found and removed of crashed runs' segments. */
  readonly reclaimed: ReclaimReport;
  readonly #slots: Slot[];
  readonly #free: Slot[];
  readonly #waiters: Waiter[] = [];
  readonly #writes = new Set<Promise<unknown>>();
  readonly #unregisterExit: () => void;
  #closing: Promise<void> | undefined;

  private constructor(name: string, options: ResolvedShmRingOptions, slots: Slot[], reclaimed: ReclaimReport) {
    this.name = name;
    this.options = options;
    this.#slots = slots;
    this.#free = [...slots];
    this.reclaimed = reclaimed;
    const paths = slots.map((s) => s.path);
    this.#unregisterExit = onProcessExit(() => removeSync(paths));
  }

  /**
   * Reclaims crashed runs' segments in the directory, then creates the ring's N segment files
   * (exclusively: an existing file or symlink of that name is an error, never overwritten).
   * @throws ArgumentError for a bad option, or when N × slotBytes exceeds the directory's free
   * space (`checkSpace`); the file system's error when a file cannot be created.
   */
  static async create(options: ShmRingOptions): Promise<ShmRing> {
    if (typeof options !== 'object' || options === null) throw new ArgumentError('options', 'must be an object');
    const resolved: ResolvedShmRingOptions = { ...shmRingDefaults(), ...withoutUndefined(options) };
    const slots = requirePositiveInt('slots', resolved.slots, MAX_SLOTS);
    const slotBytes = requirePositiveInt('slotBytes', resolved.slotBytes, MAX_SLOT_CAPACITY);
    requireInt('fileMode', resolved.fileMode, { min: 0, max: 0o777 });
    requireRingId('ringId', resolved.ringId);
    if (typeof resolved.directory !== 'string' || resolved.directory.length === 0) throw new ArgumentError('directory', 'must be a non-empty path');
    const name = ringName(resolved.job, resolved.rank, resolved.ringId);
    const directory = resolved.directory;

    const reclaimed = await reclaimSegments(directory);
    if (resolved.checkSpace) {
      const fs = await statfs(directory);
      const free = fs.bavail * fs.bsize;
      const needed = slots * (HEADER_BYTES + slotBytes);
      if (needed > free) {
        throw new ArgumentError(
          'slotBytes',
          `${slots} slots of ${slotBytes} bytes need ${needed} bytes but ${directory} has ${free} bytes free (enlarge it, e.g. a bigger /dev/shm or emptyDir sizeLimit, or use fewer or smaller slots)`,
        );
      }
    }

    const owner = currentOwner();
    const created: Slot[] = [];
    try {
      for (let index = 0; index < slots; index++) {
        const path = join(directory, segmentFileName(name, index));
        const handle = await open(path, CREATE_EXCLUSIVE, resolved.fileMode);
        const slot: Slot = { index, path, handle, generation: 0, inUse: false, issued: false };
        created.push(slot);
        // open()'s mode passes through the umask; the caller's mode is meant exactly.
        await handle.chmod(resolved.fileMode);
        await handle.truncate(HEADER_BYTES + slotBytes);
        const header = encodeHeader({ slot: index, owner, capacity: slotBytes, generation: 0, length: 0, state: SlotState.Empty, crc32: 0 });
        await writeFully(handle, header, 0);
      }
    } catch (error) {
      await Promise.allSettled(created.map((s) => s.handle.close()));
      removeSync(created.map((s) => s.path));
      throw error;
    }
    return new ShmRing(name, resolved, created, reclaimed);
  }

  /** How many slots the ring has. */
  get slots(): number {
    return this.#slots.length;
  }

  /** The largest batch a slot takes, in bytes. */
  get slotBytes(): number {
    return this.options.slotBytes;
  }

  /** How many slots are held by a write or an unreleased descriptor (at most `slots`). */
  get inUse(): number {
    return this.#slots.length - this.#free.length;
  }

  /** The segment files' paths, by slot. */
  get paths(): readonly string[] {
    return this.#slots.map((s) => s.path);
  }

  /** Whether close() was called. */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** Whether a batch of `byteLength` bytes fits a slot (a larger one must go another way, e.g. NATS). */
  fits(byteLength: number): boolean {
    return Number.isInteger(byteLength) && byteLength >= 0 && byteLength <= this.options.slotBytes;
  }

  /**
   * Copies `bytes` into a free slot and returns its descriptor. Waits while every slot is in use
   * (until a release(), the signal's abort or close()). The caller may reuse `bytes` once the
   * promise resolved.
   * @throws ArgumentError when the batch is larger than a slot (the message names both sizes);
   * AbortError; ClosedError after close(); the file system's error when the write fails (the
   * slot is free again and its header says no batch is ready).
   */
  async write(bytes: Uint8Array, options: CallOptions = {}): Promise<SegmentDescriptor> {
    if (this.#closing !== undefined) throw new ClosedError(`shared-memory ring ${this.name} is closed`);
    if (!(bytes instanceof Uint8Array)) throw new ArgumentError('bytes', 'must be a Uint8Array');
    if (bytes.byteLength > this.options.slotBytes) {
      throw new ArgumentError('bytes', `a batch of ${bytes.byteLength} bytes does not fit a slot of ${this.options.slotBytes} bytes of ring ${this.name}`);
    }
    const slot = await this.#acquire(options.signal);
    const writing = this.#fill(slot, bytes);
    this.#writes.add(writing);
    try {
      return await writing;
    } finally {
      this.#writes.delete(writing);
    }
  }

  /**
   * Frees the slot of `descriptor` (the trainer acked its batch), waking a waiting write().
   * Returns false and changes nothing when the slot was already released or rewritten since (a
   * repeated ack).
   * @throws ArgumentError when the descriptor is malformed, of another ring, or names a slot or
   * generation this ring never issued.
   */
  release(descriptor: SegmentDescriptor): boolean {
    let d: SegmentDescriptor;
    try {
      d = parseSegmentDescriptor(descriptor);
    } catch (error) {
      throw new ArgumentError('descriptor', (error as Error).message, { cause: error });
    }
    if (d.ring !== this.name) throw new ArgumentError('descriptor.ring', `${JSON.stringify(d.ring)} is not this ring (${this.name})`);
    const slot = this.#slots[d.slot];
    if (slot === undefined) throw new ArgumentError('descriptor.slot', `slot ${d.slot} is out of range for a ring of ${this.slots} slots`);
    if (d.generation > slot.generation || (d.generation === slot.generation && slot.inUse && !slot.issued)) {
      throw new ArgumentError('descriptor.generation', `slot ${d.slot} never issued generation ${d.generation} (it is at ${slot.generation})`);
    }
    if (d.generation < slot.generation || !slot.inUse) return false;
    slot.inUse = false;
    slot.issued = false;
    this.#giveBack(slot);
    return true;
  }

  /**
   * Stops the ring: waiting writes reject with a ClosedError, writes in progress finish, then the
   * segment files are removed. Descriptors still out become unreadable. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    for (const waiter of this.#waiters.splice(0)) {
      waiter.cleanup();
      waiter.reject(new ClosedError(`shared-memory ring ${this.name} was closed while write() waited for a free slot`));
    }
    await Promise.allSettled([...this.#writes]);
    await Promise.allSettled(this.#slots.map((s) => s.handle.close()));
    removeSync(this.paths);
    this.#unregisterExit();
  }

  #acquire(signal: AbortSignal | undefined): Promise<Slot> {
    if (signal?.aborted) return Promise.reject(new AbortError(`write() to ring ${this.name} was aborted`));
    const free = this.#free.shift();
    if (free !== undefined) {
      free.inUse = true;
      return Promise.resolve(free);
    }
    return new Promise<Slot>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        cleanup: onAbort(signal, () => {
          const at = this.#waiters.indexOf(waiter);
          if (at >= 0) this.#waiters.splice(at, 1);
          reject(new AbortError(`write() to ring ${this.name} was aborted while all ${this.slots} slots were in use`));
        }),
      };
      this.#waiters.push(waiter);
    });
  }

  #giveBack(slot: Slot): void {
    const waiter = this.#waiters.shift();
    if (waiter === undefined) {
      this.#free.push(slot);
      return;
    }
    waiter.cleanup();
    slot.inUse = true;
    waiter.resolve(slot);
  }

  async #fill(slot: Slot, bytes: Uint8Array): Promise<SegmentDescriptor> {
    const generation = slot.generation + 1;
    // The header moves to the new generation before the data changes, so a reader of the old one notices.
    slot.generation = generation;
    const owner = currentOwner();
    const base = { slot: slot.index, owner, capacity: this.options.slotBytes, generation };
    try {
      // The 128-byte headers, and batches up to SYNC_WRITE_BYTES, are written synchronously: on
      // tmpfs that is a memory copy, cheaper than a trip through libuv's thread pool.
      writeFullySync(slot.handle.fd, encodeHeader({ ...base, length: 0, state: SlotState.Writing, crc32: 0 }), 0);
      if (bytes.byteLength <= SYNC_WRITE_BYTES) writeFullySync(slot.handle.fd, bytes, HEADER_BYTES);
      else await writeFully(slot.handle, bytes, HEADER_BYTES);
      const checksum = this.options.checksum ? crc32(bytes) : undefined;
      const ready = { ...base, length: bytes.byteLength, state: SlotState.Ready, crc32: checksum ?? 0 };
      writeFullySync(slot.handle.fd, encodeHeader(ready), 0);
      slot.issued = true;
      const descriptor: SegmentDescriptor = { ring: this.name, slot: slot.index, generation, offset: HEADER_BYTES, length: bytes.byteLength };
      return checksum === undefined ? descriptor : { ...descriptor, checksum };
    } catch (error) {
      slot.inUse = false;
      if (this.#closing === undefined) this.#giveBack(slot);
      throw error;
    }
  }
}

function removeSync(paths: readonly string[]): void {
  for (const path of paths) {
    try {
      unlinkSync(path);
    } catch {
      // Already gone (or never created): nothing to remove.
    }
  }
}
