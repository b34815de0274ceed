import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { ArgumentError, DatasetError, IndexOutOfRangeError } from '../errors.ts';
import type { Tensor } from '../tensor.ts';
import { ImageFolder } from './image-folder.ts';
import { toFloat32 } from './transforms.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shardline-images-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A solid-colour image, `width`×`height`, with `channels` channels. */
async function writeImage(file: string, format: 'png' | 'jpeg', color: number[], width = 4, height = 3): Promise<void> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const channels = color.length as 3 | 4;
  const pixels = Buffer.alloc(width * height * channels);
  for (let k = 0; k < pixels.length; k++) pixels[k] = color[k % channels]!;
  const image = sharp(pixels, { raw: { width, height, channels } });
  await (format === 'png' ? image.png() : image.jpeg({ quality: 100 })).toFile(file);
}

/** root/{cat,dog,emu}: cat has 2 images (one nested), dog 1 PNG + 1 JPEG + a text file, emu none. */
async function makeTree(name: string): Promise<string> {
  const root = path.join(tmp, name);
  await writeImage(path.join(root, 'dog', 'b.png'), 'png', [0, 255, 0]);
  await writeImage(path.join(root, 'dog', 'A.JPG'), 'jpeg', [0, 0, 255]);
  fs.writeFileSync(path.join(root, 'dog', 'notes.txt'), 'not an image');
  await writeImage(path.join(root, 'cat', 'z.png'), 'png', [255, 0, 0, 128], 2, 2);
  await writeImage(path.join(root, 'cat', 'nested', 'a.png'), 'png', [10, 20, 30]);
  fs.mkdirSync(path.join(root, 'emu'));
  fs.writeFileSync(path.join(root, 'README'), 'a file at the top level is not a class');
  return root;
}

const root = await makeTree('tree');

test('classes are the sorted folder names; samples are sorted and labelled', () => {
  const ds = new ImageFolder({ root });
  assert.deepEqual(ds.classes, ['cat', 'dog', 'emu']);
  assert.deepEqual([...ds.classToIndex], [['cat', 0], ['dog', 1], ['emu', 2]]);
  assert.deepEqual(
    ds.samples.map((s) => [path.relative(ds.root, s.path), s.label]),
    [
      [path.join('cat', 'nested', 'a.png'), 0],
      [path.join('cat', 'z.png'), 0],
      [path.join('dog', 'A.JPG'), 1],
      [path.join('dog', 'b.png'), 1],
    ],
  );
  assert.equal(ds.length, 4);
});

test('images decode to uint8 [H, W, 3] by default, alpha removed', async () => {
  const ds = new ImageFolder({ root });
  const { image, label } = await ds.get(3);
  assert.equal(label, 1);
  assert.equal(image.dtype, 'uint8');
  assert.deepEqual(image.shape, [3, 4, 3]);
  assert.deepEqual([...image.data.subarray(0, 3)], [0, 255, 0]);
  const rgba = await ds.get(1);
  assert.deepEqual(rgba.image.shape, [2, 2, 3]);
  assert.deepEqual([...rgba.image.data.subarray(0, 3)], [255, 0, 0]);
  const jpeg = (await ds.get(-2)).image;
  assert.deepEqual(jpeg.shape, [3, 4, 3]);
  assert.ok(Math.abs((jpeg.data[2] as number) - 255) <= 2 && (jpeg.data[0] as number) <= 2, `jpeg pixel ${[...jpeg.data.subarray(0, 3)]}`);
  await assert.rejects(ds.get(4), IndexOutOfRangeError);
  await assert.rejects(ds.get(-5), IndexOutOfRangeError);
});

test('channels: 4 keeps alpha, 1 is grey, keep is as stored', async () => {
  const rgba = (await new ImageFolder({ root, channels: 4 }).get(1)).image;
  assert.deepEqual(rgba.shape, [2, 2, 4]);
  assert.deepEqual([...rgba.data.subarray(0, 4)], [255, 0, 0, 128]);
  assert.deepEqual((await new ImageFolder({ root, channels: 1 }).get(1)).image.shape, [2, 2, 1]);
  assert.deepEqual((await new ImageFolder({ root, channels: 'keep' }).get(1)).image.shape, [2, 2, 4]);
});

test('a transform is applied; decode: false gives the file bytes', async () => {
  const ds = new ImageFolder({ root, transform: toFloat32 });
  const { image } = await ds.get(3);
  assert.equal(image.dtype, 'float32');
  assert.deepEqual([...image.data.subarray(0, 3)], [0, 1, 0]);
  const raw = new ImageFolder<Tensor>({ root, decode: false });
  const bytes = (await raw.get(0)).image;
  assert.equal(bytes.dtype, 'uint8');
  assert.deepEqual([...bytes.data], [...fs.readFileSync(raw.samples[0]!.path)]);
});

test('custom extensions are matched case-insensitively', () => {
  const ds = new ImageFolder({ root, extensions: ['.JPG'] });
  assert.deepEqual(ds.samples.map((s) => path.basename(s.path)), ['A.JPG']);
});

test('a corrupt image is a DatasetError naming the file', async () => {
  const own = await makeTree('corrupt');
  const bad = path.join(own, 'cat', 'broken.png');
  fs.writeFileSync(bad, Buffer.from('\x89PNG\r\n\x1a\n this is not really a png'));
  const truncated = path.join(own, 'dog', 'c.png');
  fs.writeFileSync(truncated, fs.readFileSync(path.join(own, 'dog', 'b.png')).subarray(0, 40));
  const ds = new ImageFolder({ root: own });
  const index = ds.samples.findIndex((s) => s.path.endsWith('broken.png'));
  await assert.rejects(ds.get(index), (e: unknown) => e instanceof DatasetError && e.index === index && e.message.includes(bad));
  const t = ds.samples.findIndex((s) => s.path.endsWith('c.png'));
  await assert.rejects(ds.get(t), (e: unknown) => e instanceof DatasetError && e.message.includes('c.png'));
  fs.rmSync(ds.samples[0]!.path);
  await assert.rejects(ds.get(0), (e: unknown) => e instanceof DatasetError && /cannot read image/.test(e.message));
});

test('symlinks inside the root are followed; symlinks escaping it are refused', async () => {
  const own = await makeTree('links');
  const outside = path.join(tmp, 'outside');
  await writeImage(path.join(outside, 'secret.png'), 'png', [1, 2, 3]);
  fs.symlinkSync(path.join(own, 'dog', 'b.png'), path.join(own, 'cat', 'alias.png'));
  assert.equal(new ImageFolder({ root: own }).samples.filter((s) => s.label === 0).length, 3);

  fs.symlinkSync(path.join(outside, 'secret.png'), path.join(own, 'cat', 'escape.png'));
  assert.throws(() => new ImageFolder({ root: own }), (e: unknown) => e instanceof DatasetError && /escape\.png.*outside the dataset root/.test(e.message));
  fs.rmSync(path.join(own, 'cat', 'escape.png'));

  fs.symlinkSync(outside, path.join(own, 'stolen'));
  assert.throws(() => new ImageFolder({ root: own }), (e: unknown) => e instanceof DatasetError && /stolen/.test(e.message));
  fs.rmSync(path.join(own, 'stolen'));

  fs.symlinkSync(path.join(own, 'cat'), path.join(own, 'cat', 'nested', 'loop'));
  assert.throws(() => new ImageFolder({ root: own }), (e: unknown) => e instanceof DatasetError && /cycle/.test(e.message));
});

test('bad options are refused, naming the argument', () => {
  assert.throws(() => new ImageFolder(undefined as never), (e: unknown) => e instanceof ArgumentError && e.argument === 'options');
  assert.throws(() => new ImageFolder({ root: '' }), (e: unknown) => e instanceof ArgumentError && e.argument === 'root');
  assert.throws(() => new ImageFolder({ root: path.join(tmp, 'missing') }), (e: unknown) => e instanceof ArgumentError && e.argument === 'root');
  assert.throws(
    () => new ImageFolder({ root: path.join(root, 'README') }),
    (e: unknown) => e instanceof ArgumentError && e.argument === 'root' && /not a readable folder/.test(e.message),
  );
  assert.throws(() => new ImageFolder({ root, extensions: [] }), (e: unknown) => e instanceof ArgumentError && e.argument === 'extensions');
  assert.throws(() => new ImageFolder({ root, extensions: ['png'] }), (e: unknown) => e instanceof ArgumentError && e.argument === 'extensions[0]');
  assert.throws(() => new ImageFolder({ root, channels: 2 as never }), (e: unknown) => e instanceof ArgumentError && e.argument === 'channels');
  assert.throws(() => new ImageFolder({ root, decode: 'yes' as never }), (e: unknown) => e instanceof ArgumentError && e.argument === 'decode');
  assert.throws(() => new ImageFolder({ root, transform: 1 as never }), (e: unknown) => e instanceof ArgumentError && e.argument === 'transform');
});
