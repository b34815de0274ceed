/**
 * The conformance suite every ShardSource passes (hono's `common.case` habit): the same bytes
 * from stat/read/readRange/download, NotFoundError for missing keys, UnsafeKeyError for hostile
 * ones before any I/O, downloads that never leave a partial file (abort, size mismatch, missing
 * key), and ClosedError after close. Each store's test file calls {@link shardSourceConformance}
 * with a fixture over a real backend (a temp directory, a real MinIO). Test code, not product code.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AbortError, ArgumentError, ClosedError, FormatError } from '@shardline/core';
import { NotFoundError, UnsafeKeyError } from '../errors.ts';
import type { ShardSource } from './shard-source.ts';

/** A store under test and a way to put objects into it behind its back. */
export interface ConformanceFixture {
  /** A new source over the fixture's data (the suite closes the ones it opens). */
  open(): ShardSource;
  /** Writes `bytes` as the object `key` (relative to the source's root or prefix). */
  put(key: string, bytes: Buffer): Promise<void>;
  /** Removes what setup made. */
  teardown(): Promise<void>;
}

/** Options of {@link shardSourceConformance}. */
export interface ConformanceOptions {
  /** The suite's name, e.g. `LocalDirectorySource`. */
  name: string;
  setup(): Promise<ConformanceFixture>;
  /**
   * Size of the object the abort test downloads: large enough that the download is still running
   * at its first progress report (several chunks or parts of the store). Default 8 MiB.
   */
  largeObjectBytes?: number;
}

// Hostile keys every store must refuse before touching its backend.
const HOSTILE_KEYS = ['../escape', '/etc/passwd', 'a/../../b', 'a\\b', 'a\0b', '%2e%2e/x', 'a//b', '\uff0e\uff0e/x', ''];

/** Registers the conformance tests of one store under `describe(options.name)`. */
export function shardSourceConformance(options: ConformanceOptions): void {
  describe(`${options.name} conformance`, () => {
    let fixture: ConformanceFixture;
    let source: ShardSource;
    let dir: string;
    const opened: ShardSource[] = [];
    const small = randomBytes(100_003);
    const large = randomBytes(options.largeObjectBytes ?? 8 * 1024 * 1024);
    const nestedKey = 'shards/nested/日本語 shard.bin';

    before(async () => {
      fixture = await options.setup();
      source = fixture.open();
      opened.push(source);
      dir = await mkdtemp(path.join(tmpdir(), 'shardline-conformance-'));
      await fixture.put('small.bin', small);
      await fixture.put('large.bin', large);
      await fixture.put('empty.bin', Buffer.alloc(0));
      await fixture.put(nestedKey, small.subarray(0, 1000));
    });
    after(async () => {
      for (const s of opened) await s.close();
      await fixture?.teardown();
      if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    });

    // The destination folder holds exactly `names` (no temp or partial files).
    async function assertFolder(names: string[]): Promise<void> {
      assert.deepEqual((await readdir(dir)).sort(), [...names].sort());
    }

    test('stat gives the size and a version tag', async () => {
      const info = await source.stat('small.bin');
      assert.equal(info.key, 'small.bin');
      assert.equal(info.size, small.length);
      assert.ok(typeof info.etag === 'string' && info.etag !== '');
      assert.equal((await source.stat('empty.bin')).size, 0);
      assert.equal((await source.stat(nestedKey)).size, 1000);
      assert.equal(source.location.endsWith('/'), true);
    });

    test('read returns the whole object and refuses one over maxBytes with a FormatError', async () => {
      assert.deepEqual(await source.read('small.bin'), small);
      assert.deepEqual(await source.read(nestedKey), small.subarray(0, 1000));
      assert.equal((await source.read('empty.bin')).length, 0);
      assert.deepEqual(await source.read('small.bin', { maxBytes: small.length }), small);
      await assert.rejects(source.read('small.bin', { maxBytes: small.length - 1 }), (e: unknown) => e instanceof FormatError && /small\.bin.*maxBytes/.test(e.message));
      await assert.rejects(source.read('small.bin', { maxBytes: -1 }), ArgumentError);
    });

    test('readRange returns exactly the bytes of the range', async () => {
      const n = small.length;
      for (const [offset, length] of [[0, 1], [0, n], [1, 1000], [n - 1, 1], [12_345, 54_321], [n - 10, 10]] as const) {
        assert.deepEqual(await source.readRange('small.bin', offset, length), small.subarray(offset, offset + length), `[${offset}, +${length})`);
      }
      assert.deepEqual(await source.readRange('large.bin', large.length - 70_000, 70_000), large.subarray(large.length - 70_000));
      assert.equal((await source.readRange('small.bin', 5, 0)).length, 0);
      assert.equal((await source.readRange('small.bin', n, 0)).length, 0);
    });

    test('readRange past the end is a FormatError naming the key and the range; bad offsets are ArgumentErrors', async () => {
      const n = small.length;
      for (const [offset, length] of [[n - 10, 11], [n, 1], [n + 100, 5], [n + 1, 0]] as const) {
        await assert.rejects(
          source.readRange('small.bin', offset, length),
          (e: unknown) => e instanceof FormatError && e.message.includes('small.bin') && e.message.includes(`[${offset}, ${offset + length})`),
          `[${offset}, +${length})`,
        );
      }
      await assert.rejects(source.readRange('empty.bin', 0, 1), FormatError);
      await assert.rejects(source.readRange('small.bin', -1, 5), (e: unknown) => e instanceof ArgumentError && e.argument === 'offset');
      await assert.rejects(source.readRange('small.bin', 0, 1.5), (e: unknown) => e instanceof ArgumentError && e.argument === 'length');
      await assert.rejects(source.readRange('small.bin', Number.NaN, 1), ArgumentError);
    });

    test('download writes the same bytes, reports progress up to the size and replaces an existing file', async () => {
      const target = path.join(dir, 'large.out');
      await writeFile(target, 'old contents');
      const progress: number[] = [];
      const bytes = await source.download('large.bin', target, { expectedSize: large.length, onProgress: (b) => progress.push(b) });
      assert.equal(bytes, large.length);
      assert.ok((await readFile(target)).equals(large));
      assert.equal(progress.at(-1), large.length);
      for (let i = 1; i < progress.length; i++) assert.ok(progress[i]! > progress[i - 1]!, 'progress increases');
      // Without expectedSize, and for small, nested and empty objects.
      assert.equal(await source.download('small.bin', path.join(dir, 'small.out')), small.length);
      assert.ok((await readFile(path.join(dir, 'small.out'))).equals(small));
      assert.equal(await source.download(nestedKey, path.join(dir, 'nested.out'), { expectedSize: 1000 }), 1000);
      assert.ok((await readFile(path.join(dir, 'nested.out'))).equals(small.subarray(0, 1000)));
      assert.equal(await source.download('empty.bin', path.join(dir, 'empty.out')), 0);
      assert.equal(await source.download('empty.bin', path.join(dir, 'empty2.out'), { expectedSize: 0 }), 0);
      assert.equal((await readFile(path.join(dir, 'empty.out'))).length, 0);
      await assertFolder(['large.out', 'small.out', 'nested.out', 'empty.out', 'empty2.out']);
      for (const f of await readdir(dir)) await rm(path.join(dir, f));
    });

    test('concurrent downloads of one object to different files all complete', async () => {
      const targets = [0, 1, 2].map((i) => path.join(dir, `copy-${i}`));
      const sizes = await Promise.all(targets.map((t) => source.download('large.bin', t, { expectedSize: large.length })));
      assert.deepEqual(sizes, [large.length, large.length, large.length]);
      for (const t of targets) assert.ok((await readFile(t)).equals(large));
      for (const t of targets) await rm(t);
    });

    test('an expectedSize mismatch is a FormatError naming the key, and no file is left', async () => {
      const target = path.join(dir, 'mismatch.out');
      for (const expectedSize of [small.length + 1, small.length - 1, 0]) {
        await assert.rejects(
          source.download('small.bin', target, { expectedSize }),
          (e: unknown) => e instanceof FormatError && e.message.includes('small.bin') && e.message.includes(String(expectedSize)),
          `expectedSize ${expectedSize}`,
        );
      }
      await assert.rejects(source.download('empty.bin', target, { expectedSize: 10 }), FormatError);
      await assert.rejects(source.download('large.bin', target, { expectedSize: large.length + 1_000_000 }), FormatError);
      await assert.rejects(source.download('large.bin', target, { expectedSize: large.length - 1 }), FormatError);
      await assertFolder([]);
    });

    test('a missing key is a NotFoundError naming it, from every operation, and download leaves no file', async () => {
      const isNotFound = (e: unknown): boolean => e instanceof NotFoundError && e.key === 'no/such.bin' && e.message.includes('no/such.bin');
      await assert.rejects(source.stat('no/such.bin'), isNotFound);
      await assert.rejects(source.read('no/such.bin'), isNotFound);
      await assert.rejects(source.readRange('no/such.bin', 0, 10), isNotFound);
      await assert.rejects(source.download('no/such.bin', path.join(dir, 'missing.out')), isNotFound);
      await assert.rejects(source.download('no/such.bin', path.join(dir, 'missing.out'), { expectedSize: 10 }), isNotFound);
      // A "folder" is not an object.
      await assert.rejects(source.stat('shards'), NotFoundError);
      await assertFolder([]);
    });

    test('hostile keys are UnsafeKeyErrors from every operation', async () => {
      for (const key of HOSTILE_KEYS) {
        const isUnsafe = (e: unknown): boolean => e instanceof UnsafeKeyError && e.key === key;
        await assert.rejects(source.stat(key), isUnsafe, JSON.stringify(key));
        await assert.rejects(source.read(key), isUnsafe, JSON.stringify(key));
        await assert.rejects(source.readRange(key, 0, 1), isUnsafe, JSON.stringify(key));
        await assert.rejects(source.download(key, path.join(dir, 'hostile.out')), isUnsafe, JSON.stringify(key));
      }
      await assertFolder([]);
    });

    test('abort mid-download rejects with an AbortError and leaves no file', async () => {
      const target = path.join(dir, 'aborted.out');
      const controller = new AbortController();
      let reports = 0;
      await assert.rejects(
        source.download('large.bin', target, {
          signal: controller.signal,
          onProgress: () => {
            reports++;
            controller.abort(new Error('test abort'));
          },
        }),
        (e: unknown) => e instanceof AbortError && e.message.includes('large.bin'),
      );
      assert.ok(reports >= 1);
      await assertFolder([]);
      // Already aborted: nothing starts.
      await assert.rejects(source.download('large.bin', target, { signal: AbortSignal.abort() }), AbortError);
      await assert.rejects(source.read('small.bin', { signal: AbortSignal.abort() }), AbortError);
      await assertFolder([]);
      // The source still works afterwards.
      assert.equal(await source.download('small.bin', target), small.length);
      await rm(target);
    });

    test('download checks its destination and options', async () => {
      await assert.rejects(source.download('small.bin', ''), (e: unknown) => e instanceof ArgumentError && e.argument === 'destination');
      await assert.rejects(source.download('small.bin', path.join(dir, 'x'), { expectedSize: -1 }), ArgumentError);
      await assert.rejects(source.download('small.bin', path.join(dir, 'no-such-folder', 'x')), (e: unknown) => (e as NodeJS.ErrnoException).code === 'ENOENT');
      await assertFolder([]);
    });

    test('after close every operation rejects with a ClosedError; close is idempotent', async () => {
      const s = fixture.open();
      opened.push(s);
      assert.equal((await s.stat('small.bin')).size, small.length);
      await s.close();
      await s.close();
      await assert.rejects(s.stat('small.bin'), ClosedError);
      await assert.rejects(s.read('small.bin'), ClosedError);
      await assert.rejects(s.readRange('small.bin', 0, 1), ClosedError);
      await assert.rejects(s.download('small.bin', path.join(dir, 'closed.out')), ClosedError);
      await assertFolder([]);
    });
  });
}
