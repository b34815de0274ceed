/**
 * LocalDirectorySource: the conformance suite over a temp directory, then what only a file system
 * has — symbolic links inside and outside the root, directories, an unreadable root.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ArgumentError } from '@shardline/core';
import { NotFoundError, StoreError, UnsafeKeyError } from '../errors.ts';
import { shardSourceConformance } from './conformance.ts';
import { LocalDirectorySource } from './local-directory-source.ts';

shardSourceConformance({
  name: 'LocalDirectorySource',
  async setup() {
    const root = await mkdtemp(path.join(tmpdir(), 'shardline-local-source-'));
    return {
      open: () => new LocalDirectorySource(root),
      async put(key, bytes) {
        await mkdir(path.dirname(path.join(root, key)), { recursive: true });
        await writeFile(path.join(root, key), bytes);
      },
      teardown: () => rm(root, { recursive: true, force: true }),
    };
  },
});

let base: string;
let root: string;
let source: LocalDirectorySource;
before(async () => {
  base = await mkdtemp(path.join(tmpdir(), 'shardline-local-links-'));
  root = path.join(base, 'dataset');
  await mkdir(path.join(root, 'shards'), { recursive: true });
  await writeFile(path.join(root, 'shards', 'a.bin'), 'inside');
  await writeFile(path.join(base, 'secret.txt'), 'outside the root');
  await mkdir(path.join(base, 'elsewhere'));
  await writeFile(path.join(base, 'elsewhere', 'b.bin'), 'outside too');
  // Links that stay inside the root, and links that leave it.
  await symlink(path.join(root, 'shards', 'a.bin'), path.join(root, 'absolute-inside.bin'));
  await symlink('shards/a.bin', path.join(root, 'relative-inside.bin'));
  await symlink('shards', path.join(root, 'linked-folder'));
  await symlink(path.join(base, 'secret.txt'), path.join(root, 'absolute-outside.bin'));
  await symlink('../secret.txt', path.join(root, 'relative-outside.bin'));
  await symlink(path.join(base, 'elsewhere'), path.join(root, 'outside-folder'));
  await symlink('loop-b', path.join(root, 'loop-a'));
  await symlink('loop-a', path.join(root, 'loop-b'));
  await symlink('nowhere', path.join(root, 'dangling'));
  source = new LocalDirectorySource(root);
});
after(async () => {
  await source.close();
  await rm(base, { recursive: true, force: true });
});

test('symbolic links whose target is inside the root are followed', async () => {
  for (const key of ['absolute-inside.bin', 'relative-inside.bin', 'linked-folder/a.bin']) {
    assert.equal((await source.read(key)).toString(), 'inside', key);
  }
});

test('symbolic links that leave the root are UnsafeKeyErrors from every operation, and nothing is copied', async () => {
  const out = await mkdtemp(path.join(tmpdir(), 'shardline-local-out-'));
  try {
    for (const key of ['absolute-outside.bin', 'relative-outside.bin', 'outside-folder/b.bin']) {
      const refused = (e: unknown): boolean => e instanceof UnsafeKeyError && e.key === key && /outside/.test(e.message);
      await assert.rejects(source.stat(key), refused, key);
      await assert.rejects(source.read(key), refused, key);
      await assert.rejects(source.readRange(key, 0, 1), refused, key);
      await assert.rejects(source.download(key, path.join(out, 'x')), refused, key);
    }
    assert.deepEqual(await readdir(out), []);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});

test('a loop of links is an UnsafeKeyError, a dangling link and a directory are NotFoundErrors', async () => {
  await assert.rejects(source.stat('loop-a'), (e: unknown) => e instanceof UnsafeKeyError && /loop/.test(e.message));
  await assert.rejects(source.stat('dangling'), NotFoundError);
  await assert.rejects(source.stat('shards'), NotFoundError);
  await assert.rejects(source.read('shards/a.bin/x'), NotFoundError);
});

test('a root reached through a symbolic link works; a missing root is a StoreError naming it', async () => {
  const linkedRoot = path.join(base, 'root-link');
  await symlink(root, linkedRoot);
  const linked = new LocalDirectorySource(linkedRoot);
  assert.equal((await linked.read('shards/a.bin')).toString(), 'inside');
  await assert.rejects(linked.read('absolute-outside.bin'), UnsafeKeyError);

  const missing = new LocalDirectorySource(path.join(base, 'no-such-root'));
  await assert.rejects(missing.stat('a'), (e: unknown) => e instanceof StoreError && e.message.includes('no-such-root'));
});

test('the constructor checks its root', () => {
  assert.throws(() => new LocalDirectorySource(''), ArgumentError);
  assert.throws(() => new LocalDirectorySource('a\0b'), ArgumentError);
  assert.equal(new LocalDirectorySource('/data/train/').location, '/data/train/');
  assert.equal(new LocalDirectorySource('/data/train').location, '/data/train/');
});

test('the etag changes when the file changes', async () => {
  const key = 'shards/changing.bin';
  await writeFile(path.join(root, key), 'one');
  const first = await source.stat(key);
  await writeFile(path.join(root, key), 'three');
  const second = await source.stat(key);
  assert.notEqual(first.etag, second.etag);
  assert.equal(second.size, 5);
});
