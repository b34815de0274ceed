/**
 * The disk cache against an in-memory ShardSource with fault injection (corrupt bytes, stalled
 * downloads): budget checks, shared downloads, verification with retries and quarantine, aborts,
 * restart adoption, plan-aware eviction and prefetch, and the budget invariant as a property.
 * (The cache against a real MinIO through S3Source lives in test/.)
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { AbortError } from '@shardline/core';
import { CacheBudgetError, NotFoundError, QuarantinedError, VerificationError } from '../errors.ts';
import type { DownloadOptions, ObjectInfo, ShardSource } from '../store/shard-source.ts';
import { ShardCache, type CacheEvent, type ShardSpec } from './shard-cache.ts';

// A store of in-memory objects; `corrupt` flips a byte of the next N downloads of a key and
// `stall` makes downloads of a key wait until aborted.
class MemorySource implements ShardSource {
  readonly location = 'memory://test/';
  readonly objects = new Map<string, Buffer>();
  readonly downloads = new Map<string, number>();
  readonly corrupt = new Map<string, number>();
  readonly stall = new Set<string>();

  async stat(key: string): Promise<ObjectInfo> {
    const body = this.#get(key);
    return { key, size: body.length, etag: String(body.length) };
  }
  async read(key: string): Promise<Buffer> {
    return Buffer.from(this.#get(key));
  }
  async readRange(key: string, offset: number, length: number): Promise<Buffer> {
    return Buffer.from(this.#get(key).subarray(offset, offset + length));
  }
  async download(key: string, destination: string, options: DownloadOptions = {}): Promise<number> {
    this.downloads.set(key, (this.downloads.get(key) ?? 0) + 1);
    const body = Buffer.from(this.#get(key));
    await new Promise((resolve) => setImmediate(resolve));
    if (this.stall.has(key)) {
      await writeFile(destination, body.subarray(0, body.length >> 1)); // a partial file, as a real transfer leaves
      await new Promise<void>((_, reject) => {
        options.signal?.addEventListener('abort', () => reject(new AbortError(`download of ${key} aborted`)), { once: true });
      });
    }
    options.signal?.throwIfAborted();
    const left = this.corrupt.get(key) ?? 0;
    if (left > 0) {
      this.corrupt.set(key, left - 1);
      body[0] = body[0]! ^ 0xff;
    }
    await writeFile(destination, body);
    return body.length;
  }
  async close(): Promise<void> {}
  #get(key: string): Buffer {
    const body = this.objects.get(key);
    if (body === undefined) throw new NotFoundError(key, this.location);
    return body;
  }
}

function dataset(sizes: readonly number[]): { source: MemorySource; shards: ShardSpec[]; hashes: Map<string, string> } {
  const source = new MemorySource();
  const hashes = new Map<string, string>();
  const shards = sizes.map((size, i) => {
    const key = `shards/shard.${String(i).padStart(5, '0')}.mds`;
    const body = Buffer.alloc(size, i + 1);
    if (size >= 4) body.writeUInt32LE(i, 0);
    source.objects.set(key, body);
    hashes.set(key, createHash('sha256').update(body).digest('hex'));
    return { key, size };
  });
  return { source, shards, hashes };
}

const sha256Verify =
  (hashes: Map<string, string>) =>
  async (shard: ShardSpec, file: string): Promise<void> => {
    const digest = createHash('sha256').update(readFileSync(file)).digest('hex');
    if (digest !== hashes.get(shard.key)) throw new VerificationError(shard.key, `sha256 ${digest} differs from the index`);
  };

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'shardline-cache-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function filesIn(dir: string): string[] {
  return readdirSync(dir).sort();
}

// A background prefetch may rename its temp file between readdir and stat: a vanished name counts 0.
function bytesOnDisk(dir: string): number {
  return readdirSync(dir).reduce((n, f) => n + (statSync(path.join(dir, f), { throwIfNoEntry: false })?.size ?? 0), 0);
}

test('a budget below twice the largest shard is refused at open, naming the minimum', async (t) => {
  const { source, shards } = dataset([100, 300, 200]);
  await assert.rejects(ShardCache.open({ dir: tempDir(t), budgetBytes: 599, source, shards }), (error: unknown) => {
    assert.ok(error instanceof CacheBudgetError);
    assert.match(error.message, /minimum 600 bytes/);
    assert.match(error.message, /shard\.00001\.mds, 300 bytes/);
    return true;
  });
  await assert.rejects(ShardCache.open({ dir: tempDir(t), budgetBytes: -1, source, shards }), /budgetBytes: must be an integer ≥ 1/);
  await assert.rejects(
    ShardCache.open({ dir: tempDir(t), budgetBytes: 1000, source, shards: [{ key: 'a', size: -5 }] }),
    /shards\[0\]\.size: must be an integer ≥ 0, got -5/,
  );
});

test('a miss downloads and verifies, a hit reads the same file; an unknown key is refused', async (t) => {
  const { source, shards, hashes } = dataset([64, 64, 64]);
  const cache = await ShardCache.open({ dir: tempDir(t), budgetBytes: 1024, source, shards, verify: sha256Verify(hashes) });
  const first = await cache.acquire(shards[1]!.key);
  assert.deepEqual(readFileSync(first.file), source.objects.get(shards[1]!.key));
  first.release();
  const second = await cache.acquire(shards[1]!.key);
  assert.equal(second.file, first.file);
  second.release();
  assert.deepEqual(
    { hits: cache.stats().hits, misses: cache.stats().misses, bytesIn: cache.stats().bytesIn },
    { hits: 1, misses: 1, bytesIn: 64 },
  );
  await assert.rejects(cache.acquire('../../etc/passwd'), /key: "..\/..\/etc\/passwd" is not a shard of this dataset's index/);
  await cache.close();
});

test('concurrent requests for one shard share one download', async (t) => {
  const { source, shards } = dataset([1000, 1000]);
  const cache = await ShardCache.open({ dir: tempDir(t), budgetBytes: 4000, source, shards });
  const held = await Promise.all(Array.from({ length: 8 }, () => cache.acquire(shards[0]!.key)));
  assert.equal(source.downloads.get(shards[0]!.key), 1);
  assert.equal(new Set(held.map((h) => h.file)).size, 1);
  for (const h of held) h.release();
  await cache.close();
});

test('a corrupt download is fetched again; after maxFailures the shard is quarantined and named', async (t) => {
  const { source, shards, hashes } = dataset([128, 128, 128]);
  const dir = tempDir(t);
  const events: CacheEvent[] = [];
  const cache = await ShardCache.open({
    dir,
    budgetBytes: 1024,
    source,
    shards,
    verify: sha256Verify(hashes),
    maxFailures: 3,
    onEvent: (e) => events.push(e),
  });
  source.corrupt.set(shards[0]!.key, 2); // two bad copies, then a good one
  const ok = await cache.acquire(shards[0]!.key);
  assert.deepEqual(readFileSync(ok.file), source.objects.get(shards[0]!.key));
  ok.release();
  assert.equal(cache.stats().verificationFailures, 2);

  source.corrupt.set(shards[2]!.key, 100); // always bad
  await assert.rejects(cache.acquire(shards[2]!.key), (error: unknown) => {
    assert.ok(error instanceof QuarantinedError);
    assert.match(error.message, /shard shards\/shard\.00002\.mds is quarantined after 3 failed verifications/);
    return true;
  });
  const downloadsBefore = source.downloads.get(shards[2]!.key);
  await assert.rejects(cache.acquire(shards[2]!.key), QuarantinedError); // at once, no new download
  assert.equal(source.downloads.get(shards[2]!.key), downloadsBefore);
  assert.deepEqual(cache.quarantined(), [shards[2]!.key]);
  assert.ok(events.some((e) => e.type === 'quarantined' && e.key === shards[2]!.key));
  // Consistent: one good file, no temporary leftovers, the others still work.
  assert.equal(filesIn(dir).filter((f) => f.startsWith('.tmp-')).length, 0);
  const other = await cache.acquire(shards[1]!.key);
  other.release();
  assert.equal(cache.stats().files, 2);
  await cache.close();
});

test('aborting a download midway leaves no file behind, and the shard can be fetched later', async (t) => {
  const { source, shards } = dataset([256, 256]);
  const dir = tempDir(t);
  const cache = await ShardCache.open({ dir, budgetBytes: 1024, source, shards });
  source.stall.add(shards[0]!.key);
  const controller = new AbortController();
  const pending = cache.acquire(shards[0]!.key, { signal: controller.signal });
  await new Promise((resolve) => setTimeout(resolve, 20));
  controller.abort();
  await assert.rejects(pending, AbortError);
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.deepEqual(filesIn(dir), []);
  assert.equal(cache.usedBytes, 0);
  source.stall.delete(shards[0]!.key);
  const shard = await cache.acquire(shards[0]!.key);
  assert.equal(statSync(shard.file).size, 256);
  shard.release();
  await cache.close();
});

test('on restart the cache adopts its valid files, deletes leftovers and trims to the budget', async (t) => {
  const { source, shards, hashes } = dataset([100, 100, 100, 100]);
  const dir = tempDir(t);
  const first = await ShardCache.open({ dir, budgetBytes: 1000, source, shards, verify: sha256Verify(hashes) });
  for (const s of shards) (await first.acquire(s.key)).release();
  await first.close();
  const [a, b] = filesIn(dir);
  writeFileSync(path.join(dir, '.tmp-deadbeef'), 'torn');
  writeFileSync(path.join(dir, '.tmp-cafe.0123456789ab.partial'), 'torn by a store');
  writeFileSync(path.join(dir, a!), 'wrong size'); // a file that no longer matches its shard
  writeFileSync(path.join(dir, b!), Buffer.alloc(100, 0xee)); // right size, wrong bytes: caught by verify
  writeFileSync(path.join(dir, `${'0'.repeat(40)}.shard`), 'stale'); // a shard of no dataset we know
  writeFileSync(path.join(dir, 'README'), 'not ours'); // left alone

  const events: CacheEvent[] = [];
  const second = await ShardCache.open({ dir, budgetBytes: 250, source, shards, verify: sha256Verify(hashes), onEvent: (e) => events.push(e) });
  assert.equal(events.filter((e) => e.type === 'removed').length, 5);
  assert.equal(events.filter((e) => e.type === 'adopted').length, 2);
  assert.ok(second.usedBytes <= 250, `used ${second.usedBytes} > 250`);
  assert.equal(second.stats().files, 2);
  assert.ok(filesIn(dir).includes('README'));
  assert.equal(bytesOnDisk(dir) - 'not ours'.length, second.usedBytes);
  await second.close();
});

test('plan-aware: a shard with no use left goes before one needed soon; prefetch follows the schedule', async (t) => {
  const { source, shards } = dataset([100, 100, 100, 100, 100, 100]);
  const keys = shards.map((s) => s.key);
  const cache = await ShardCache.open({ dir: tempDir(t), budgetBytes: 300, source, shards, prefetchHorizon: 1 });
  // Visit order: 0, 1, 2, 0, 3 — when 3's turn comes, 1 and 2 have no use left and 0 is done too.
  cache.setSchedule([keys[0]!, keys[1]!, keys[2]!, keys[0]!, keys[3]!]);
  for (const i of [0, 1, 2]) (await cache.acquire(keys[i]!)).release();
  // Room for 0's second visit exists (it is cached): a hit, and 1 (least recent with no use left) is the first to go.
  (await cache.acquire(keys[0]!)).release();
  assert.equal(cache.stats().hits, 1);
  (await cache.acquire(keys[3]!)).release();
  assert.ok(!cache.has(keys[1]!), 'shard 1 (no use left, least recent) should have been evicted first');
  assert.ok(cache.usedBytes <= 300);

  // Prefetch: with a horizon of 2, acquiring 4 starts 5 in the background.
  const prefetching = await ShardCache.open({ dir: tempDir(t), budgetBytes: 400, source, shards, prefetchHorizon: 2 });
  prefetching.setSchedule([keys[4]!, keys[5]!]);
  (await prefetching.acquire(keys[4]!)).release();
  for (let i = 0; i < 50 && !prefetching.has(keys[5]!); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.ok(prefetching.has(keys[5]!), 'the next shard of the schedule was not prefetched');
  (await prefetching.acquire(keys[5]!)).release();
  assert.equal(prefetching.stats().hits, 1);
  await Promise.all([cache.close(), prefetching.close()]);
});

test('a hit on the last scheduled use of a shard is held before the prefetch it starts makes room (the prefetch cannot evict it)', async (t) => {
  const { source, shards } = dataset([100, 100, 100]);
  const keys = shards.map((s) => s.key);
  const cache = await ShardCache.open({ dir: tempDir(t), budgetBytes: 200, source, shards, prefetchHorizon: 1 });
  t.after(() => cache.close());
  // 0, then 1 (prefetched behind 0), then 2, then 0 again: when 1 is acquired it has no use left,
  // and prefetching 2 needs room — 1 is the only shard without a later use.
  cache.setSchedule([keys[0]!, keys[1]!, keys[2]!, keys[0]!]);
  (await cache.acquire(keys[0]!)).release();
  for (let i = 0; i < 100 && !cache.has(keys[1]!); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.ok(cache.has(keys[1]!), 'shard 1 was prefetched');
  const held = await cache.acquire(keys[1]!);
  assert.equal(cache.stats().hits, 1);
  await new Promise((resolve) => setTimeout(resolve, 50)); // the prefetch of 2 has had its chance to evict
  assert.ok(cache.has(keys[1]!), 'a held shard stays in the cache');
  assert.deepEqual(readFileSync(held.file), Buffer.from(source.objects.get(keys[1]!)!), 'the held file is there and whole');
  held.release();
  (await cache.acquire(keys[2]!)).release();
  assert.ok(cache.usedBytes <= 200);
});

test('property: the cache never holds more than its budget, in memory or on disk', async (t) => {
  const root = tempDir(t);
  let run = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.integer({ min: 1, max: 400 }), { minLength: 2, maxLength: 8 }),
      fc.integer({ min: 0, max: 1000 }),
      fc.array(fc.tuple(fc.nat(), fc.boolean()), { minLength: 1, maxLength: 30 }),
      fc.option(fc.array(fc.nat(), { minLength: 1, maxLength: 20 })),
      async (sizes, extra, steps, schedule) => {
        const { source, shards } = dataset(sizes);
        const budget = 2 * Math.max(...sizes) + extra;
        const dir = path.join(root, String(run++));
        const cache = await ShardCache.open({ dir, budgetBytes: budget, source, shards, prefetchHorizon: 2 });
        const check = (): void => {
          assert.ok(cache.usedBytes <= budget, `used ${cache.usedBytes} > budget ${budget}`);
          assert.ok(bytesOnDisk(dir) <= budget, `on disk ${bytesOnDisk(dir)} > budget ${budget}`);
        };
        if (schedule !== null) cache.setSchedule(schedule.map((i) => shards[i % shards.length]!.key));
        for (const [i, concurrent] of steps) {
          const key = shards[i % shards.length]!.key;
          if (concurrent) {
            const both = await Promise.all([cache.acquire(key), cache.acquire(shards[(i + 1) % shards.length]!.key)]);
            check();
            for (const h of both) h.release();
          } else {
            (await cache.acquire(key)).release();
          }
          check();
        }
        await cache.close();
        check();
      },
    ),
    { numRuns: 60, timeout: 20_000 }, // a hang fails; a slow run on a loaded machine does not
  );
});
