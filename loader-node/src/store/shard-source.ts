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

/** A read-only store of dataset files under one prefix. */
export interface ShardSource {
  /** A human-readable location, e.g. `s3://bucket/prefix/` or `/data/train/`. */
  readonly location: string;
  /** Metadata of `key`; rejects with a NotFoundError naming the key when it does not exist. */
  stat(key: string, signal?: AbortSignal): Promise<ObjectInfo>;
  /** The whole object (for small files: index.json, tar indexes). Refuses objects over `maxBytes`. */
  read(key: string, options?: { maxBytes?: number; signal?: AbortSignal }): Promise<Buffer>;
  /** Bytes [offset, offset + length) of `key`. */
  readRange(key: string, offset: number, length: number, signal?: AbortSignal): Promise<Buffer>;
  /**
   * Writes the whole object to `destination` (a path the caller owns, e.g. a temp file of the
   * cache) and resolves to the number of bytes written. Never leaves a partial file on failure.
   */
  download(key: string, destination: string, options?: DownloadOptions): Promise<number>;
  /** Releases connections and handles. Idempotent. */
  close(): Promise<void>;
}
