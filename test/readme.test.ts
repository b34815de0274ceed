/**
 * The README's code sample must run as printed: a newcomer copies it first.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { join } from 'node:path';

const root = fileURLToPath(new URL('..', import.meta.url));

test('the README tour sample runs and iterates every batch of both epochs', async () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const sample = /```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(sample, 'README has a ```ts sample');
  // Count what the loop body sees, without changing the sample's code.
  const instrumented = sample
    .replace(/^( *)\/\/ batch\.x and batch\.y are tensors.*$/m, '$1seen.push(batch);')
    .concat('\nexport { seen, loader };\n');
  assert.notEqual(instrumented, sample.concat('\nexport { seen, loader };\n'), 'the loop body comment is where the test hooks in');
  // Inside the repository so that '@shardline/core' resolves through the workspace link.
  const dir = join(root, '.cache', `readme-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'sample.ts');
  writeFileSync(file, `const seen: { x: { shape: number[] }; y: { data: ArrayLike<number> } }[] = [];\n${instrumented}`);
  try {
    const mod = (await import(pathToFileURL(file).href)) as {
      seen: { x: { shape: number[] } }[];
      loader: { length: number };
    };
    assert.equal(mod.loader.length, 8, '1000 samples / 4 ranks = 250 per rank = 8 batches of 32');
    assert.equal(mod.seen.length, 16, 'two epochs of 8 batches');
    assert.deepEqual(mod.seen[0]!.x.shape, [32]);
    assert.deepEqual(mod.seen[7]!.x.shape, [250 - 7 * 32]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
