import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { type Tensor } from '@shardline/core';
import { runPython } from '../../../test/support/python.ts';
import { type CliResult, bytesOf, encodeNpy, lastJson, readDataset, shardline, tempDir } from './test-support.ts';
import type { WriteSummary } from './write.ts';

function put(file: string, data: string | Uint8Array): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, data);
}

test('files: every file under the folder, sorted by path, into size-limited shards, read back exactly', async (t) => {
  const dir = tempDir(t, 'write');
  const input = path.join(dir, 'in');
  const files: Record<string, Buffer> = {
    'b.bin': Buffer.alloc(700, 1),
    'a/z.txt': Buffer.from('zed'),
    'a/empty': Buffer.alloc(0),
    'é.txt': Buffer.from('accent'),
    'c/d/e.bin': Buffer.alloc(900, 7),
  };
  for (const [name, data] of Object.entries(files)) put(path.join(input, name), data);
  const out = path.join(dir, 'out');
  const r = await shardline(['write', input, out, '--size-limit', '1kb', '--compression', 'gz', '--hashes', 'sha256,md5', '--no-progress', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const summary = lastJson<WriteSummary>(r);
  assert.equal(summary.from, 'files');
  assert.equal(summary.samples, 5);
  assert.ok(summary.shards >= 2, `a 1 KiB limit splits 1.6 KB of files (got ${summary.shards} shards)`);
  assert.deepEqual(summary.columns, { data: 'bytes', name: 'str' });
  assert.deepEqual(summary.hashes, ['md5', 'sha256']);
  assert.equal(readdirSync(out).filter((f) => f.endsWith('.mds.gz')).length, summary.shards);

  const samples = await readDataset(out);
  const names = Object.keys(files).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  assert.deepEqual(samples.map((s) => s.name), names);
  samples.forEach((s) => assert.deepEqual(Buffer.from(s.data as Uint8Array), files[s.name as string]));
});

test('imagefolder: labels from sorted class folders and images in the order of torchvision ImageFolder', async (t) => {
  const dir = tempDir(t, 'write');
  const root = path.join(dir, 'photos');
  const image = (color: number, format: 'jpeg' | 'png'): Promise<Buffer> =>
    sharp({ create: { width: 8, height: 6, channels: 3, background: { r: color, g: 255 - color, b: 40 } } })[format]().toBuffer();
  const tree: Record<string, Buffer> = {
    'dog/x.png': await image(10, 'png'),
    'cat/b.jpg': await image(20, 'jpeg'),
    'cat/A.JPEG': await image(30, 'jpeg'),
    'cat/sub/c.jpg': await image(40, 'jpeg'),
    'cat/sub/deeper/d.jpg': await image(50, 'jpeg'),
    'cat/sub-x/e.jpg': await image(60, 'jpeg'),
  };
  for (const [name, data] of Object.entries(tree)) put(path.join(root, name), data);
  put(path.join(root, 'cat', 'notes.txt'), 'not an image: skipped, as torchvision skips it');

  const out = path.join(dir, 'out');
  const r = await shardline(['write', root, out, '--no-progress', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const summary = lastJson<WriteSummary>(r);
  assert.equal(summary.from, 'imagefolder', 'auto detects a tree of class folders');
  assert.deepEqual(summary.columns, { class: 'str', image: 'jpeg', label: 'int' });
  assert.match(r.stderr, /PNG images are stored in the jpeg column/);

  // torchvision's make_dataset, verbatim in its ordering rules.
  const expected = JSON.parse(
    runPython(
      String.raw`
import json, os, sys
root = sys.argv[1]
classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
ext = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
out = []
for i, c in enumerate(classes):
    for r, _, fnames in sorted(os.walk(os.path.join(root, c), followlinks=True)):
        for f in sorted(fnames):
            p = os.path.join(r, f)
            if p.lower().endswith(ext):
                out.append([os.path.relpath(p, root), i])
print(json.dumps(out))
`,
      { args: [root] },
    ),
  ) as [string, number][];
  const samples = await readDataset(out);
  assert.deepEqual(
    samples.map((s) => [s.class, s.label]),
    expected.map(([name, label]) => [name.split('/')[0], BigInt(label)]),
  );
  samples.forEach((s, i) => assert.deepEqual(Buffer.from(s.image as Uint8Array), tree[expected[i]![0]], expected[i]![0]));
});

test('jsonl: columns inferred from the first line, or given with --columns; values read back exactly', async (t) => {
  const dir = tempDir(t, 'write');
  const input = path.join(dir, 'events.jsonl');
  put(
    input,
    [
      '{"id": 1, "score": 0.5, "text": "héllo", "meta": {"tags": ["a"]}, "big": 1234567890123456789}',
      '',
      '{"id": -2, "score": 3, "text": "", "meta": null, "big": 0}',
      '{"id": 3, "score": -1e-3, "text": "x\\ny", "meta": [1, 2.5], "big": -9223372036854775808}',
    ].join('\r\n'),
  );
  const inferred = path.join(dir, 'inferred');
  const explicit = path.join(dir, 'explicit');
  const [a, b] = await Promise.all([
    shardline(['write', input, inferred, '--compression', 'zstd:5', '--no-progress', '--json']),
    shardline(['write', input, explicit, '--from', 'jsonl', '--columns', 'id:int32,score:float32,text:str,meta:json,big:str_int', '--hashes', 'none', '--json']),
  ]);
  assert.equal(a.code, 0, a.stderr);
  assert.deepEqual(lastJson<WriteSummary>(a).columns, { big: 'int64', id: 'int64', meta: 'json', score: 'float64', text: 'str' });
  assert.deepEqual(await readDataset(inferred), [
    { big: 1234567890123456789n, id: 1n, meta: { tags: ['a'] }, score: 0.5, text: 'héllo' },
    { big: 0n, id: -2n, meta: null, score: 3, text: '' },
    { big: -9223372036854775808n, id: 3n, meta: [1, 2.5], score: -0.001, text: 'x\ny' },
  ]);
  assert.equal(b.code, 0, b.stderr);
  const summary = lastJson<WriteSummary>(b);
  assert.deepEqual(summary.columns, { big: 'str_int', id: 'int32', meta: 'json', score: 'float32', text: 'str' });
  assert.deepEqual(summary.hashes, []);
  assert.deepEqual(
    (await readDataset(explicit)).map((s) => [s.id, s.score, s.big]),
    [
      [1, 0.5, 1234567890123456789n],
      [-2, 3, 0n],
      [3, Math.fround(-1e-3), -9223372036854775808n],
    ],
  );
});

test('npy: a folder of arrays gives one column per file and one sample per row', async (t) => {
  const dir = tempDir(t, 'write');
  const input = path.join(dir, 'arrays');
  const x = Float32Array.from({ length: 5 * 2 * 3 }, (_, i) => i * 0.25);
  const y = BigInt64Array.of(4n, 3n, 2n, 1n, 2n ** 60n);
  put(path.join(input, 'x.npy'), encodeNpy('<f4', [5, 2, 3], bytesOf(x)));
  put(path.join(input, 'y.npy'), encodeNpy('<i8', [5], bytesOf(y)));
  const out = path.join(dir, 'out');
  const r = await shardline(['write', input, out, '--no-progress', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const summary = lastJson<WriteSummary>(r);
  assert.equal(summary.from, 'npy');
  assert.deepEqual(summary.columns, { x: 'ndarray:float32:2,3', y: 'int64' });
  const samples = await readDataset(out);
  assert.equal(samples.length, 5);
  samples.forEach((s, i) => {
    const t = s.x as Tensor;
    assert.deepEqual([t.dtype, t.shape], ['float32', [2, 3]]);
    assert.deepEqual([...t.data], [...x.subarray(i * 6, (i + 1) * 6)]);
    assert.equal(s.y, y[i]);
  });
});

test('hostile input fails with exit 1 and names the file and the line or row', async (t) => {
  const dir = tempDir(t, 'write');
  const pickle = path.join(dir, 'objects.npy');
  put(pickle, encodeNpy('|O', [2], new Uint8Array(16)));
  const notObject = path.join(dir, 'bad.jsonl');
  put(notObject, '{"a": 1}\n{"a": 2}\n[3]\n');
  const wrongType = path.join(dir, 'types.jsonl');
  put(wrongType, '{"a": 1}\n{"a": 2.5}\n');
  const unequal = path.join(dir, 'unequal');
  put(path.join(unequal, 'x.npy'), encodeNpy('<i4', [3], new Uint8Array(12)));
  put(path.join(unequal, 'y.npy'), encodeNpy('<i4', [2], new Uint8Array(8)));
  const [a, b, c, d] = (await Promise.all(
    [pickle, notObject, wrongType, unequal].map((input, i) => shardline(['write', input, path.join(dir, `out${i}`), '--no-progress'])),
  )) as [CliResult, CliResult, CliResult, CliResult];
  assert.equal(a.code, 1);
  assert.match(a.stderr, /objects\.npy: descr "\|O" is an object array: np\.save pickles its elements, and Shardline never unpickles/);
  assert.equal(b.code, 1);
  assert.match(b.stderr, /bad\.jsonl: line 3: must be a JSON object \(one sample\), got an array/);
  assert.equal(c.code, 1);
  assert.match(c.stderr, /types\.jsonl: line 2: sample\.a: int64 needs an integer .*got 2\.5 \(the columns were inferred from the first line; pass --columns to set them\)/);
  assert.equal(d.code, 1);
  assert.match(d.stderr, /y\.npy has 2 rows but x\.npy has 3/);
  for (const r of [a, b, c, d]) assert.doesNotMatch(r.stderr, /\n\s+at /, 'a clear message, no stack trace');
  assert.equal(readdirSync(dir).filter((f) => f.startsWith('out') && readdirSync(path.join(dir, f)).includes('index.json')).length, 0, 'no index.json is written for a failed conversion');
});

test('wrong or missing flags exit 2 with a message naming the flag and the value', async (t) => {
  const dir = tempDir(t, 'write');
  const input = path.join(dir, 'a.jsonl');
  put(input, '{"a": 1}\n');
  const taken = path.join(dir, 'taken');
  put(path.join(taken, 'file'), 'x');
  const out = path.join(dir, 'out');
  // The CLI's exit code for each kind of usage error; config.test.ts covers every flag's message.
  const cases: [string[], RegExp][] = [
    [['write', input, out, '--compression', 'lz4'], /--compression must be zstd, zstd:<1-22>, gz, gz:<0-9>, br, br:<0-11> or none, got "lz4"/],
    [['write', dir, out, '--from', 'files', '--columns', 'a:int64'], /--columns: applies to JSONL input only/],
    [['write', input], /missing required argument 'output'/],
    [['write', input, out, '--bogus'], /unknown option '--bogus'/],
    [['write', input, taken], /<output>: .*taken is not empty \(1 entries\); choose a new or empty directory, or pass --overwrite/],
  ];
  const results = await Promise.all(cases.map(([args]) => shardline(args)));
  results.forEach((r, i) => {
    assert.equal(r.code, 2, `${cases[i]![0].join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, cases[i]![1]);
  });
});
