/**
 * Where a dataset's files come from: the interface every object store implements (local
 * directory, S3). Keys are relative to the dataset prefix, with '/' separators, exactly as an
 * index names them; implementations resolve them with `resolveKey` and refuse any escape.
 * The cache and the pipeline only ever talk to this interface.
 */

/** What a store knows about one object. */
export interface ObjectInfo {
  /** The relative key, as given. */
  readonly key: string;
  /** Size in bytes. */
  readonly size: number;
  /** The store's version tag (S3 ETag, or size+mtime for a local file), for change detection. */
  readonly etag: string;
}

/** Options of {@link ShardSource.download}. */
export interface DownloadOptions {
  /** Aborts the transfer; the partial file is removed and the promise rejects with an AbortError. */
  signal?: AbortSignal;
  /** The size the caller expects (from the index); a different size is a FormatError naming the key. */
  expectedSize?: number;
  /** Called with the bytes written so far, for progress and metrics. */
  onProgress?: (bytes: number) => void;
}

/**
 * A read-only store of dataset files under one prefix.
 *
 * Shared contract (checked by the conformance suite in `conformance.ts`):
 * - every key goes through `resolveKey` first: an unsafe key is an UnsafeKeyError before any I/O;
 * - a missing object (or a key naming a folder) is a NotFoundError naming the key;
 * - bad numbers and options are ArgumentErrors naming the argument;
 * - a call whose signal aborts rejects with an AbortError; after `close()` calls reject with a
 *   ClosedError;
 * - failures of the backend itself (after the store's retries) are StoreErrors naming the key,
 *   the operation and the last error.
 */
export interface ShardSource {
  /** A human-readable location, ending in '/', e.g. `s3://bucket/prefix/` or `/data/train/`. */
  readonly location: string;
  /** Metadata of `key`; rejects with a NotFoundError naming the key when it does not exist. */
  stat(key: string, signal?: AbortSignal): Promise<ObjectInfo>;
  /**
   * The whole object (for small files: index.json, tar indexes). An object over `maxBytes`
   * (default 64 MiB) is a FormatError, raised before its bytes are read.
   */
  read(key: string, options?: { maxBytes?: number; signal?: AbortSignal }): Promise<Buffer>;
  /**
   * Bytes [offset, offset + length) of `key`. A range that does not lie within the object is a
   * FormatError naming the key, the range and the object's size; `length` 0 gives an empty
   * Buffer when `offset` ≤ size.
   */
  readRange(key: string, offset: number, length: number, signal?: AbortSignal): Promise<Buffer>;
  /**
   * Writes the whole object to `destination` (a path the caller owns, e.g. a temp file of the
   * cache; an existing file is replaced) and resolves to the number of bytes written. The bytes go
   * to a temp file in the same folder (`.<name>.<random>.partial`) that is renamed to
   * `destination` only when complete: on any failure, abort included, no file is left behind.
   * File-system errors of the destination (a missing folder, a full disk) are rethrown as Node
   * raised them, with their `code`.
   */
  download(key: string, destination: string, options?: DownloadOptions): Promise<number>;
  /**
   * Releases connections and handles. Later calls reject with a ClosedError, and so do calls in
   * flight of a remote store (a local one lets them finish). Idempotent.
   */
  close(): Promise<void>;
}
