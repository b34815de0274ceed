import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ArgumentError, FormatError } from '@shardline/core';
import { type InputSample, compareCodePoints, detectInputKind, openInput } from './inputs.ts';
import { encodeNpy, tempDir } from './test-support.ts';

function put(file: string, data: string | Uint8Array = 'x'): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, data);
}

async function all(samples: AsyncIterable<InputSample>): Promise<InputSample[]> {
  const out: InputSample[] = [];
  for await (const s of samples) out.push(s);
  return out;
}

const JPEG = Uint8Array.of(0xff, 0xd8, 0xff, 0xe0, 1, 2);

test('auto detection: .jsonl and .npy files, folders of .npy, class-folder trees, anything else as files', async (t) => {
  const dir = tempDir(t, 'inputs');
  put(path.join(dir, 'a.jsonl'), '{}');
  put(path.join(dir, 'b.NDJSON'), '{}');
  put(path.join(dir, 'c.npy'), encodeNpy('<i4', [1], new Uint8Array(4)));
  put(path.join(dir, 'arrays', 'x.npy'));
  put(path.join(dir, 'arrays', '.DS_Store'));
  put(path.join(dir, 'tree', 'cat', 'deep', 'a.JPG'), JPEG);
  put(path.join(dir, 'tree', '.hidden'));
  put(path.join(dir, 'notes', 'sub', 'a.txt'));
  put(path.join(dir, 'mixed', 'x.npy'));
  put(path.join(dir, 'mixed', 'y.txt'));
  put(path.join(dir, 'data.csv'));
  assert.equal(await detectInputKind(path.join(dir, 'a.jsonl')), 'jsonl');
  assert.equal(await detectInputKind(path.join(dir, 'b.NDJSON')), 'jsonl');
  assert.equal(await detectInputKind(path.join(dir, 'c.npy')), 'npy');
  assert.equal(await detectInputKind(path.join(dir, 'arrays')), 'npy');
  assert.equal(await detectInputKind(path.join(dir, 'tree')), 'imagefolder');
  assert.equal(await detectInputKind(path.join(dir, 'notes')), 'files', 'folders without images are plain files');
  assert.equal(await detectInputKind(path.join(dir, 'mixed')), 'files');
  await assert.rejects(detectInputKind(path.join(dir, 'data.csv')), (e: Error) => e instanceof ArgumentError && /pass --from jsonl or --from npy/.test(e.message));
  await assert.rejects(detectInputKind(path.join(dir, 'nope')), /<input>: .*nope does not exist/);
});

test('files: linked files are read, linked folders are not entered; names are relative, sorted by code point', async (t) => {
  const dir = tempDir(t, 'inputs');
  const root = path.join(dir, 'root');
  put(path.join(root, 'b', 'z'), 'z');
  put(path.join(root, '\u{1F600}'), 'emoji');
  put(path.join(root, '\uFF61'), 'halfwidth');
  put(path.join(dir, 'outside', 'secret'), 'outside');
  symlinkSync(path.join(root, 'b', 'z'), path.join(root, 'link-to-file'));
  symlinkSync(path.join(dir, 'outside'), path.join(root, 'link-to-folder'));
  const input = await openInput(root, 'files');
  const samples = await all(input.samples());
  // U+FF61 sorts before U+1F600 by code point, though not by UTF-16 unit.
  assert.deepEqual(samples.map((s) => s.sample.name), ['b/z', 'link-to-file', '\uFF61', '\u{1F600}']);
  assert.deepEqual(samples.map((s) => s.done), [1, 2, 3, 4]);
  assert.ok(compareCodePoints('\uFF61', '\u{1F600}') < 0 && '\uFF61' > '\u{1F600}');
});

test('imagefolder refuses what it cannot store, naming the file or class', async (t) => {
  const dir = tempDir(t, 'inputs');
  const bmp = path.join(dir, 'bmp');
  put(path.join(bmp, 'cat', 'a.jpg'), JPEG);
  put(path.join(bmp, 'dog', 'b.bmp'), 'BM');
  await assert.rejects(openInput(bmp, 'imagefolder'), (e: Error) => e instanceof FormatError && /dog\/b\.bmp: \.bmp images are not supported/.test(e.message));

  const empty = path.join(dir, 'empty');
  put(path.join(empty, 'cat', 'a.jpg'), JPEG);
  put(path.join(empty, 'dog', 'readme.txt'));
  await assert.rejects(openInput(empty, 'imagefolder'), /found no image in the class folder\(s\) "dog"/);

  const fake = path.join(dir, 'fake');
  put(path.join(fake, 'cat', 'a.jpg'), 'GIF89a');
  const input = await openInput(fake, 'imagefolder');
  await assert.rejects(all(input.samples()), /cat\/a\.jpg: not a JPEG or PNG image/);

  await assert.rejects(openInput(path.join(dir, 'bmp', 'cat', 'a.jpg'), 'imagefolder'), /<input>: .* is not a directory, which --from imagefolder needs/);
  await assert.rejects(openInput(fake, 'imagefolder', { columns: { a: 'int' } }), (e: Error) => e instanceof ArgumentError && e.argument === '--columns');
});
