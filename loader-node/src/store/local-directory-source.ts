/**
 * A ShardSource over a local directory (a dataset on local disk, a mounted volume, NFS): positional
 * reads through one FileHandle per call, downloads copied through a temp file and renamed. Every
 * key is checked by resolveKey and, after symbolic links are resolved, must still name a file
 * inside the root.
 */
import { open, realpath, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { ArgumentError, ClosedError, FormatError } from '@shardline/core';
import { NotFoundError, StoreError, UnsafeKeyError } from '../errors.ts';
import {
  downloadOptions,
  rangePastEnd,
  readOptions,
  requireRange,
  requireSignal,
  sizeMismatch,
  throwIfAborted,
  tooLarge,
} from './checks.ts';
import { resolveKey, resolveLocalPath } from './key.ts';
import { requireDestination, writeAtomically } from './partial-file.ts';
import type { DownloadOptions, ObjectInfo, ShardSource } from './shard-source.ts';

// Copy buffer of download(): large enough that per-call overhead vanishes, small enough to share.
const COPY_CHUNK_BYTES = 4 * 1024 * 1024;

/** An open object: its handle and what fstat said about it. */
interface OpenObject {
  readonly handle: FileHandle;
  readonly size: number;
  readonly etag: string;
}

/**
 * A read-only {@link ShardSource} over the files under `root`.
 *
 * Symbolic links inside the root are followed only when their target is inside the root too
 * (checked on the real path of both); anything else is an UnsafeKeyError. A key that names a
 * directory is a NotFoundError, as on S3. The check and the open are two steps, so a root that
 * someone rewrites concurrently is outside this guarantee: the root is a dataset, not a shared
 * scratch folder.
 * @example
 * const source = new LocalDirectorySource('/data/train');
 * const index = JSON.parse((await source.read('index.json')).toString('utf8'));
 * await source.download('shard.00000.mds', '/cache/shard.00000.mds', { expectedSize: 67108864 });
 */
export class LocalDirectorySource implements ShardSource {
  readonly location: string;
  readonly #root: string;
  #realRoot: Promise<string> | undefined;
  #closed = false;

  /** @param root The dataset directory; relative paths resolve against the working directory. */
  constructor(root: string) {
    if (typeof root !== 'string' || root === '' || root.includes('\0')) {
      throw new ArgumentError('root', `must be a non-empty directory path, got ${JSON.stringify(root)}`);
    }
    this.#root = path.resolve(root);
    this.location = this.#root.endsWith(path.sep) ? this.#root : this.#root + path.sep;
  }

  async stat(key: string, signal?: AbortSignal): Promise<ObjectInfo> {
    requireSignal(signal);
    const object = await this.#open(key, 'stat', signal);
    await object.handle.close();
    return { key, size: object.size, etag: object.etag };
  }

  async read(key: string, options?: { maxBytes?: number; signal?: AbortSignal }): Promise<Buffer> {
    const { maxBytes, signal } = readOptions(options);
    const object = await this.#open(key, 'read', signal);
    try {
      if (object.size > maxBytes) throw tooLarge(key, object.size, maxBytes);
      return await this.#readAt(key, object.handle, 0, object.size, signal);
    } finally {
      await object.handle.close();
    }
  }

  async readRange(key: string, offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    resolveKey(key);
    const range = requireRange(offset, length);
    requireSignal(signal);
    const object = await this.#open(key, 'readRange', signal);
    try {
      if (range.offset + range.length > object.size) throw rangePastEnd(key, range.offset, range.length, object.size);
      return await this.#readAt(key, object.handle, range.offset, range.length, signal);
    } finally {
      await object.handle.close();
    }
  }

  async download(key: string, destination: string, options?: DownloadOptions): Promise<number> {
    resolveKey(key);
    requireDestination(destination);
    const { signal, expectedSize, onProgress } = downloadOptions(options);
    const what = `download of ${key} from ${this.location}`;
    const object = await this.#open(key, 'download', signal);
    try {
      if (expectedSize !== undefined && object.size !== expectedSize) throw sizeMismatch(key, this.location, object.size, expectedSize);
      return await writeAtomically(destination, async (target) => {
        const chunk = Buffer.allocUnsafe(Math.min(COPY_CHUNK_BYTES, Math.max(object.size, 1)));
        let copied = 0;
        while (copied < object.size) {
          throwIfAborted(signal, what);
          const want = Math.min(chunk.length, object.size - copied);
          const { bytesRead } = await this.#io(key, 'download', () => object.handle.read(chunk, 0, want, copied));
          if (bytesRead === 0) throw new FormatError(`${key} shrank to ${copied} bytes while it was copied (${object.size} at open)`);
          let written = 0;
          while (written < bytesRead) {
            written += (await target.write(chunk, written, bytesRead - written, copied + written)).bytesWritten;
          }
          copied += bytesRead;
          onProgress?.(copied);
        }
        throwIfAborted(signal, what);
        return copied;
      });
    } finally {
      await object.handle.close();
    }
  }

  /** Nothing is held between calls; later calls reject with a ClosedError. */
  async close(): Promise<void> {
    this.#closed = true;
  }

  // Validates the key, follows links only inside the root, opens the file and fstats it.
  async #open(key: string, operation: string, signal: AbortSignal | undefined): Promise<OpenObject> {
    if (this.#closed) throw new ClosedError(`${operation}(${JSON.stringify(key)}): the LocalDirectorySource of ${this.location} is closed`);
    const root = await this.#resolvedRoot(key);
    const candidate = resolveLocalPath(root, key);
    throwIfAborted(signal, `${operation} of ${key}`);
    const real = await this.#io(key, operation, () => realpath(candidate));
    if (!real.startsWith(root.endsWith(path.sep) ? root : root + path.sep)) {
      throw new UnsafeKeyError(key, `it resolves through a symbolic link to ${real}, outside ${this.location}`);
    }
    const handle = await this.#io(key, operation, () => open(real, 'r'));
    try {
      const stats = await this.#io(key, operation, () => handle.stat());
      if (!stats.isFile()) throw new NotFoundError(key, this.location);
      return { handle, size: stats.size, etag: `${stats.size.toString(16)}-${Math.trunc(stats.mtimeMs).toString(16)}` };
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  // Positional reads until `length` bytes are in; a file that ends early changed under us.
  async #readAt(key: string, handle: FileHandle, offset: number, length: number, signal: AbortSignal | undefined): Promise<Buffer> {
    const out = Buffer.allocUnsafe(length);
    let filled = 0;
    while (filled < length) {
      throwIfAborted(signal, `read of ${key}`);
      const { bytesRead } = await this.#io(key, 'read', () => handle.read(out, filled, length - filled, offset + filled));
      if (bytesRead === 0) throw new FormatError(`${key} ended at ${offset + filled} bytes while reading [${offset}, ${offset + length})`);
      filled += bytesRead;
    }
    return out;
  }

  #resolvedRoot(key: string): Promise<string> {
    this.#realRoot ??= realpath(this.#root);
    return this.#realRoot.catch((error: unknown) => {
      this.#realRoot = undefined;
      throw new StoreError(key, `the root ${this.#root} cannot be opened: ${describe(error)}`, { cause: error });
    });
  }

  // Runs a file-system call and maps its errors to the store's: missing → NotFoundError,
  // link loops and over-long names → UnsafeKeyError, anything else → StoreError.
  async #io<T>(key: string, operation: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      switch ((error as NodeJS.ErrnoException).code) {
        case 'ENOENT':
        case 'ENOTDIR':
          throw new NotFoundError(key, this.location, { cause: error });
        case 'ELOOP':
          throw new UnsafeKeyError(key, 'it resolves through a loop of symbolic links');
        case 'ENAMETOOLONG':
          throw new UnsafeKeyError(key, 'a segment is longer than the file system allows');
        default:
          throw new StoreError(key, `${operation} in ${this.location} failed: ${describe(error)}`, { cause: error });
      }
    }
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
