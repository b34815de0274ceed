/**
 * The loader's disk cache of shards: a byte budget on a local folder, filled from a ShardSource.
 *
 * - `lru-cache` holds the index (key → file) and the byte accounting; the epoch plan picks the
 *   victims: a shard in use (acquired, not released) is never evicted, and one needed within the
 *   prefetch horizon never for a prefetch or anything needed later (only a demand fetch, needed
 *   now, may take one when nothing else is left); shards with no use left in the schedule go
 *   first (least recently used first), then the one needed farthest ahead. Without a schedule it
 *   is plain LRU.
 * - Prefetch follows the schedule: after each acquire the next `prefetchHorizon` shards are
 *   fetched in the background when room can be made without evicting anything needed sooner.
 * - A download goes to a temporary file in the cache folder, is verified (size, then the
 *   caller's `verify`, e.g. the index's hash) and renamed into place: readers never see a torn
 *   file. Concurrent requests for one shard share one download. A shard that fails verification
 *   is fetched again; after `maxFailures` failures it is quarantined: acquire rejects at once
 *   with a QuarantinedError naming it.
 * - On open the cache adopts the valid files a previous process left (size, then `verify`),
 *   deletes temporary leftovers (its own `.tmp-*` and a store's `.*.partial`) and unknown shard
 *   files, and trims itself to the budget. Other files in the folder are left alone.
 * Files are named by a hash of the key, so no key from an index ever becomes a path.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { LRUCache } from 'lru-cache';
import { AbortError, ArgumentError } from '@shardline/core';
import { CacheBudgetError, QuarantinedError, VerificationError } from '../errors.ts';
import { PARTIAL_SUFFIX } from '../store/partial-file.ts';
import type { ShardSource } from '../store/shard-source.ts';
import { AccessSchedule } from './schedule.ts';

/** A shard the cache may hold: its key in the source and its size from the index. */
export interface ShardSpec {
  readonly key: string;
  readonly size: number;
}

/** What happened in the cache, for logs and metrics (one event per line). */
export type CacheEvent =
  | { type: 'hit'; key: string }
  | { type: 'miss'; key: string }
  | { type: 'downloaded'; key: string; bytes: number; prefetch: boolean; ms: number }
  | { type: 'evicted'; key: string; bytes: number; nextUse: number }
  | { type: 'verification-failed'; key: string; failures: number; error: string }
  | { type: 'quarantined'; key: string; failures: number }
  | { type: 'adopted'; key: string; bytes: number }
  | { type: 'removed'; file: string; reason: string };

/** Options of {@link ShardCache.open}. */
export interface ShardCacheOptions {
  /** The cache folder (created if missing); the cache owns `*.shard` and `.tmp-*` files in it. */
  dir: string;
  /** The byte budget; at least twice the largest shard. */
  budgetBytes: number;
  source: ShardSource;
  /** Every shard the cache may be asked for (from the dataset's index). */
  shards: readonly ShardSpec[];
  /** Checks a downloaded or adopted file beyond its size (e.g. the index's hash); throws to reject it. */
  verify?: (shard: ShardSpec, file: string) => Promise<void>;
  /** Verification failures of one shard before it is quarantined (default 3). */
  maxFailures?: number;
  /** Upcoming schedule entries that are prefetched and protected from eviction (default 4). */
  prefetchHorizon?: number;
  /** Background downloads at once (default 2). */
  prefetchConcurrency?: number;
  onEvent?: (event: CacheEvent) => void;
}

/** Counters since open (monotonic), and the current state. */
export interface CacheStats {
  hits: number;
  misses: number;
  evictions: number;
  bytesIn: number;
  verificationFailures: number;
  prefetches: number;
  quarantined: number;
  usedBytes: number;
  files: number;
}

/** A shard held in the cache until `release()`: its file cannot be evicted meanwhile. */
export interface CachedShard {
  readonly key: string;
  readonly file: string;
  readonly size: number;
  /** Lets the cache evict the file again. Idempotent. */
  release(): void;
  [Symbol.dispose](): void;
}

interface Entry {
  readonly spec: ShardSpec;
  readonly file: string;
  pins: number;
}

interface Download {
  promise: Promise<Entry>;
  readonly controller: AbortController;
  waiters: number;
  /** Someone acquires it (not only a prefetch): it may evict horizon shards and wait for room. */
  demanded: boolean;
}

// A prefetch that found no room gives up rather than wait; a demand acquire that joined it just
// as it gave up starts over.
class PrefetchSkipped extends Error {}

const SUFFIX = '.shard';
const TEMP_PREFIX = '.tmp-';

function fileName(key: string): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 40) + SUFFIX;
}

/** The plan-aware disk cache; create with {@link ShardCache.open}. */
export class ShardCache {
  readonly dir: string;
  readonly budgetBytes: number;
  readonly #source: ShardSource;
  readonly #shards: Map<string, ShardSpec>;
  readonly #verify: ((shard: ShardSpec, file: string) => Promise<void>) | undefined;
  readonly #maxFailures: number;
  readonly #horizon: number;
  readonly #prefetchConcurrency: number;
  readonly #onEvent: (event: CacheEvent) => void;
  // Insertion/recency order and byte accounting. Eviction is always ours (room is made before a
  // set), so lru-cache's own size-based eviction never runs; dispose is not used for that reason.
  readonly #entries: LRUCache<string, Entry>;
  readonly #downloads = new Map<string, Download>();
  readonly #failures = new Map<string, number>();
  readonly #quarantine = new Set<string>();
  readonly #spaceWaiters: (() => void)[] = [];
  #reserved = 0; // bytes of downloads in flight
  #spaceVersion = 0; // bumped whenever room may have been freed, so a wait never misses a wake-up
  #schedule: AccessSchedule<string> | undefined;
  #activePrefetches = 0;
  #closed = false;
  readonly #stats = { hits: 0, misses: 0, evictions: 0, bytesIn: 0, verificationFailures: 0, prefetches: 0 };

  private constructor(options: ShardCacheOptions, shards: Map<string, ShardSpec>) {
    this.dir = options.dir;
    this.budgetBytes = options.budgetBytes;
    this.#source = options.source;
    this.#shards = shards;
    this.#verify = options.verify;
    this.#maxFailures = options.maxFailures ?? 3;
    this.#horizon = options.prefetchHorizon ?? 4;
    this.#prefetchConcurrency = options.prefetchConcurrency ?? 2;
    this.#onEvent = options.onEvent ?? (() => {});
    this.#entries = new LRUCache<string, Entry>({ maxSize: options.budgetBytes, sizeCalculation: (e) => Math.max(1, e.spec.size) });
  }

  /**
   * Opens (or re-opens) the cache in `options.dir`: validates the options, adopts valid files,
   * removes temporary leftovers and unknown files, and trims to the budget.
   * @throws CacheBudgetError when the budget is below twice the largest shard (the message says the minimum).
   * @example
   * const cache = await ShardCache.open({ dir, budgetBytes: 8 << 30, source, shards: index.shards });
   * cache.setSchedule(keysInVisitOrder);
   * using shard = await cache.acquire('shard.00003.mds');
   */
  static async open(options: ShardCacheOptions): Promise<ShardCache> {
    if (typeof options !== 'object' || options === null) throw new ArgumentError('options', 'must be an object');
    if (typeof options.dir !== 'string' || options.dir === '') throw new ArgumentError('dir', `must be a folder path, got ${JSON.stringify(options.dir)}`);
    const int = (name: string, value: unknown, min: number): void => {
      if (value !== undefined && (!Number.isSafeInteger(value) || (value as number) < min)) {
        throw new ArgumentError(name, `must be an integer ≥ ${min}, got ${String(value)}`);
      }
    };
    int('budgetBytes', options.budgetBytes, 1);
    if (options.budgetBytes === undefined) throw new ArgumentError('budgetBytes', 'is required');
    int('maxFailures', options.maxFailures, 1);
    int('prefetchHorizon', options.prefetchHorizon, 0);
    int('prefetchConcurrency', options.prefetchConcurrency, 1);
    if (!Array.isArray(options.shards) || options.shards.length === 0) throw new ArgumentError('shards', 'must be a non-empty array');
    const shards = new Map<string, ShardSpec>();
    let largest: ShardSpec | undefined;
    for (const [i, spec] of options.shards.entries()) {
      if (typeof spec?.key !== 'string' || spec.key === '') throw new ArgumentError(`shards[${i}].key`, 'must be a non-empty string');
      if (!Number.isSafeInteger(spec.size) || spec.size < 0) {
        throw new ArgumentError(`shards[${i}].size`, `must be an integer ≥ 0, got ${String(spec.size)}`);
      }
      if (shards.has(spec.key)) throw new ArgumentError(`shards[${i}].key`, `${JSON.stringify(spec.key)} is listed twice`);
      shards.set(spec.key, { key: spec.key, size: spec.size });
      if (largest === undefined || spec.size > largest.size) largest = spec;
    }
    const minimum = 2 * largest!.size;
    if (options.budgetBytes < minimum) {
      throw new CacheBudgetError(
        `cache budget ${options.budgetBytes} bytes is below the minimum ${minimum} bytes: twice the largest shard ` +
          `(${largest!.key}, ${largest!.size} bytes), so one shard can be read while the next is fetched`,
      );
    }
    await mkdir(options.dir, { recursive: true });
    const cache = new ShardCache(options, shards);
    await cache.#adopt();
    return cache;
  }

  // Adopts what a previous process left: valid shard files (oldest first, so recency survives a
  // restart), nothing torn, nothing unknown, and never more than the budget.
  async #adopt(): Promise<void> {
    const byFile = new Map([...this.#shards.values()].map((s) => [fileName(s.key), s]));
    const found: { spec: ShardSpec; file: string; mtimeMs: number }[] = [];
    for (const name of await readdir(this.dir)) {
      const file = path.join(this.dir, name);
      // Our temp names, and the ones a store writes beside its destination while it downloads.
      if (name.startsWith(TEMP_PREFIX) || (name.startsWith('.') && name.endsWith(PARTIAL_SUFFIX))) {
        await rm(file, { force: true, recursive: true });
        this.#onEvent({ type: 'removed', file, reason: 'temporary file of an interrupted download' });
        continue;
      }
      if (!name.endsWith(SUFFIX)) continue; // not ours
      const spec = byFile.get(name);
      const info = await stat(file).catch(() => undefined);
      let reason: string | undefined;
      if (spec === undefined) reason = 'not a shard of this dataset';
      else if (info === undefined || !info.isFile()) reason = 'not a regular file';
      else if (info.size !== spec.size) reason = `size ${info.size} differs from the index's ${spec.size}`;
      else if (this.#verify !== undefined) {
        try {
          await this.#verify(spec, file);
        } catch (error) {
          reason = `verification failed: ${(error as Error).message}`;
        }
      }
      if (reason !== undefined || spec === undefined || info === undefined) {
        await rm(file, { force: true, recursive: true });
        this.#onEvent({ type: 'removed', file, reason: reason ?? 'invalid' });
        continue;
      }
      found.push({ spec, file, mtimeMs: info.mtimeMs });
    }
    found.sort((a, b) => a.mtimeMs - b.mtimeMs);
    for (const { spec, file } of found) {
      this.#entries.set(spec.key, { spec, file, pins: 0 });
      this.#onEvent({ type: 'adopted', key: spec.key, bytes: spec.size });
    }
    while (this.usedBytes > this.budgetBytes) {
      if (!(await this.#evictOne(-1, true))) break;
    }
  }

  /** Bytes of the files held now (downloads in flight not included). */
  get usedBytes(): number {
    return this.#entries.calculatedSize;
  }

  /**
   * Sets the order in which shards will be read (this epoch's accesses for this rank, e.g. from
   * `shardBatchAccessOrder(plan, rank)` mapped to keys); eviction and prefetch follow it from now
   * on. Each acquire moves the schedule's cursor past the key's next access — right for one
   * reader in order. Concurrent readers, whose accesses interleave, pass `from`, the position
   * where their batch starts: the cursor moves there (never back), so one reader's accesses
   * cannot push it past what another still needs.
   */
  setSchedule(keys: Iterable<string>): void {
    const order = [...keys];
    for (const key of order) this.#spec(key);
    this.#schedule = new AccessSchedule(order);
    this.#prefetch();
  }

  /** Keys of the quarantined shards. */
  quarantined(): string[] {
    return [...this.#quarantine];
  }

  stats(): CacheStats {
    return { ...this.#stats, quarantined: this.#quarantine.size, usedBytes: this.usedBytes, files: this.#entries.size };
  }

  /** Whether `key` is in the cache now (not counting a download in flight). */
  has(key: string): boolean {
    return this.#entries.has(key);
  }

  /**
   * The shard's file, fetched if needed; held (never evicted) until `release()`. `from`: the
   * position in the schedule where this access's batch starts (see setSchedule).
   * @throws QuarantinedError when the shard failed verification `maxFailures` times;
   *   AbortError when `signal` aborts (a download shared with others goes on for them).
   */
  async acquire(key: string, options: { signal?: AbortSignal; from?: number } = {}): Promise<CachedShard> {
    const spec = this.#spec(key);
    this.#checkOpen();
    if (this.#quarantine.has(key)) throw new QuarantinedError(key, this.#failures.get(key) ?? this.#maxFailures);
    if (options.from === undefined) this.#schedule?.advance(key);
    else this.#schedule?.advanceTo(options.from);
    let entry = this.#entries.get(key);
    if (entry !== undefined) {
      this.#stats.hits++;
      this.#onEvent({ type: 'hit', key });
    } else {
      this.#stats.misses++;
      this.#onEvent({ type: 'miss', key });
      for (;;) {
        try {
          entry = await this.#join(spec, false, options.signal);
          break;
        } catch (error) {
          if (!(error instanceof PrefetchSkipped)) throw error;
        }
      }
    }
    // Held before the prefetches start: making room for them may evict any unheld shard, and
    // after advance() this one may have no use left (its last visit is this one).
    const held = this.#pin(entry);
    this.#prefetch();
    return held;
  }

  #pin(entry: Entry): CachedShard {
    entry.pins++;
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      entry.pins--;
      this.#wakeSpaceWaiters();
    };
    return { key: entry.spec.key, file: entry.file, size: entry.spec.size, release, [Symbol.dispose]: release };
  }

  #spec(key: string): ShardSpec {
    const spec = typeof key === 'string' ? this.#shards.get(key) : undefined;
    if (spec === undefined) throw new ArgumentError('key', `${JSON.stringify(key)} is not a shard of this dataset's index`);
    return spec;
  }

  #checkOpen(): void {
    if (this.#closed) throw new AbortError('the shard cache is closed');
  }

  // Joins the download of `spec` (starting it if needed); a caller's abort only detaches it.
  async #join(spec: ShardSpec, prefetch: boolean, signal?: AbortSignal): Promise<Entry> {
    let download = this.#downloads.get(spec.key);
    if (download === undefined) {
      const started: Download = { controller: new AbortController(), waiters: 0, demanded: !prefetch, promise: Promise.resolve() as never };
      started.promise = this.#fetch(spec, started);
      this.#downloads.set(spec.key, started);
      const forget = (): void => {
        if (this.#downloads.get(spec.key) === started) this.#downloads.delete(spec.key);
      };
      started.promise.then(forget, forget);
      download = started;
    } else if (!prefetch && !download.demanded) {
      download.demanded = true;
      this.#wakeSpaceWaiters();
    }
    const shared = download;
    if (signal === undefined) {
      shared.waiters++;
      return shared.promise.finally(() => shared.waiters--);
    }
    signal.throwIfAborted();
    shared.waiters++;
    return new Promise<Entry>((resolve, reject) => {
      const onAbort = (): void => {
        shared.waiters--;
        // The last one waiting for a demand download is gone: stop it (prefetches keep going).
        if (shared.waiters === 0 && !prefetch) shared.controller.abort(signal.reason);
        reject(new AbortError(`acquire of ${spec.key} was aborted`, { cause: signal.reason }));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      shared.promise.then(
        (entry) => {
          signal.removeEventListener('abort', onAbort);
          shared.waiters--;
          resolve(entry);
        },
        (error: unknown) => {
          signal.removeEventListener('abort', onAbort);
          shared.waiters--;
          reject(error);
        },
      );
    });
  }

  // Makes room, downloads to a temp file, verifies, renames into place; retries failed
  // verifications and quarantines a shard after maxFailures of them.
  async #fetch(spec: ShardSpec, download: Download): Promise<Entry> {
    const signal = download.controller.signal;
    await this.#reserve(spec, download, signal);
    try {
      for (;;) {
        const temp = path.join(this.dir, `${TEMP_PREFIX}${randomBytes(8).toString('hex')}`);
        const started = performance.now();
        try {
          const bytes = await this.#source.download(spec.key, temp, { signal, expectedSize: spec.size });
          this.#stats.bytesIn += bytes;
          if (bytes !== spec.size) throw new VerificationError(spec.key, `downloaded ${bytes} bytes, the index says ${spec.size}`);
          if (this.#verify !== undefined) await this.#verify(spec, temp);
        } catch (error) {
          await rm(temp, { force: true });
          if (signal.aborted || this.#closed) throw error;
          if (!isVerificationFailure(error)) throw error;
          const failures = (this.#failures.get(spec.key) ?? 0) + 1;
          this.#failures.set(spec.key, failures);
          this.#stats.verificationFailures++;
          this.#onEvent({ type: 'verification-failed', key: spec.key, failures, error: (error as Error).message });
          if (failures >= this.#maxFailures) {
            this.#quarantine.add(spec.key);
            this.#onEvent({ type: 'quarantined', key: spec.key, failures });
            throw new QuarantinedError(spec.key, failures, { cause: error });
          }
          continue;
        }
        const file = path.join(this.dir, fileName(spec.key));
        await rename(temp, file);
        // Born held, so no other fetch can evict it before the callers waiting for it have taken
        // their own hold (they do so as soon as this promise settles, before the next macrotask).
        const entry: Entry = { spec, file, pins: 1 };
        setImmediate(() => {
          entry.pins--;
          this.#wakeSpaceWaiters();
        });
        this.#entries.set(spec.key, entry);
        this.#failures.delete(spec.key);
        this.#onEvent({ type: 'downloaded', key: spec.key, bytes: spec.size, prefetch: !download.demanded, ms: performance.now() - started });
        return entry;
      }
    } finally {
      this.#reserved -= spec.size;
      this.#wakeSpaceWaiters();
    }
  }

  // Reserves spec.size bytes for a download: evicts victims (never a held shard, never one needed
  // within the horizon; for a prefetch, never one needed sooner than it) and, when nothing can go
  // yet, waits for a release. A demand fetch — needed now, sooner than anything in the horizon —
  // that finds only horizon shards unheld takes the farthest of them rather than wait.
  async #reserve(spec: ShardSpec, download: Download, signal: AbortSignal): Promise<void> {
    for (;;) {
      signal.throwIfAborted();
      this.#checkOpen();
      const version = this.#spaceVersion;
      if (this.usedBytes + this.#reserved + spec.size <= this.budgetBytes) {
        this.#reserved += spec.size;
        return;
      }
      if (await this.#evictOne(download.demanded ? -1 : this.#nextUse(spec.key), false)) continue;
      if (download.demanded && (await this.#evictOne(-1, true))) continue;
      if (version !== this.#spaceVersion) continue; // something freed room while we looked
      if (!download.demanded) throw new PrefetchSkipped(`no room to prefetch ${spec.key} now`);
      await new Promise<void>((resolve, reject) => {
        const wake = (): void => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        };
        const onAbort = (): void => {
          const i = this.#spaceWaiters.indexOf(wake);
          if (i >= 0) this.#spaceWaiters.splice(i, 1);
          reject(new AbortError(`waiting for cache space for ${spec.key} was aborted`, { cause: signal.reason }));
        };
        signal.addEventListener('abort', onAbort, { once: true });
        this.#spaceWaiters.push(wake);
      });
    }
  }

  #wakeSpaceWaiters(): void {
    this.#spaceVersion++;
    for (const wake of this.#spaceWaiters.splice(0)) wake();
  }

  #nextUse(key: string): number {
    return this.#schedule?.nextUse(key) ?? Number.POSITIVE_INFINITY;
  }

  // Evicts the best unheld victim whose next use is later than `neededIn` (the distance of what
  // the room is for; -1 for a demand fetch) and, unless `inHorizon`, outside the prefetch horizon.
  // Returns false when there is none.
  async #evictOne(neededIn: number, inHorizon: boolean): Promise<boolean> {
    let victim: Entry | undefined;
    let victimNext = -1;
    // rvalues(): least recently used first, so among equals the least recent wins.
    for (const entry of this.#entries.rvalues()) {
      if (entry === undefined || entry.pins > 0) continue;
      const next = this.#nextUse(entry.spec.key);
      if (this.#schedule !== undefined && !inHorizon && next < this.#horizon) continue;
      if (this.#schedule !== undefined && next <= neededIn) continue;
      if (next > victimNext) {
        victim = entry;
        victimNext = next;
        if (this.#schedule === undefined) break; // plain LRU
      }
    }
    if (victim === undefined) return false;
    this.#entries.delete(victim.spec.key);
    await rm(victim.file, { force: true });
    this.#stats.evictions++;
    this.#onEvent({ type: 'evicted', key: victim.spec.key, bytes: victim.spec.size, nextUse: victimNext });
    return true;
  }

  // Starts background downloads of the next shards of the schedule, as far as the concurrency
  // allows and room can be made without evicting anything needed sooner.
  #prefetch(): void {
    // A demand fetch waiting for room goes first: a prefetch must not take the room it waits for.
    if (this.#schedule === undefined || this.#closed || this.#spaceWaiters.length > 0) return;
    for (const key of this.#schedule.upcoming(this.#horizon)) {
      if (this.#activePrefetches >= this.#prefetchConcurrency) return;
      if (this.#entries.has(key) || this.#downloads.has(key) || this.#quarantine.has(key)) continue;
      const spec = this.#shards.get(key)!;
      // Only when room exists or can be made from shards needed later than this one.
      if (this.usedBytes + this.#reserved + spec.size > this.budgetBytes && !this.#canMakeRoom(spec)) return;
      this.#activePrefetches++;
      this.#stats.prefetches++;
      this.#join(spec, true)
        .catch(() => {}) // a failed prefetch is retried by the demand acquire, which reports it
        .finally(() => {
          this.#activePrefetches--;
          this.#prefetch();
        });
    }
  }

  #canMakeRoom(spec: ShardSpec): boolean {
    const neededIn = this.#nextUse(spec.key);
    let free = this.budgetBytes - this.usedBytes - this.#reserved;
    for (const entry of this.#entries.values()) {
      if (entry.pins > 0) continue;
      const next = this.#nextUse(entry.spec.key);
      if (next >= this.#horizon && next > neededIn) free += entry.spec.size;
      if (free >= spec.size) return true;
    }
    return free >= spec.size;
  }

  /** Aborts downloads in flight (their temp files are removed) and refuses new acquires. Files stay for the next open. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const downloads = [...this.#downloads.values()];
    for (const d of downloads) d.controller.abort(new AbortError('the shard cache is closed'));
    this.#wakeSpaceWaiters();
    await Promise.allSettled(downloads.map((d) => d.promise));
  }
}

function isVerificationFailure(error: unknown): boolean {
  const code = (error as { code?: string }).code;
  return code === 'ERR_VERIFICATION' || code === 'ERR_FORMAT';
}
