/**
 * What `shardline write` converts: a source of samples with known MDS columns. Each input kind
 * has its reader (directory files and ImageFolder trees here, JSONL in jsonl.ts, `.npy` in
 * npy-input.ts); `openInput` picks one, or detects it from what is on disk.
 *
 * Directory walks are sorted by code point (Python's `sorted`), so sample order, and ImageFolder
 * labels, are the same on every machine and match torchvision's.
 */
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { ArgumentError, FormatError } from '@shardline/core';
import type { Logger } from '../log.ts';
import { openJsonlInput } from './jsonl.ts';
import { openNpyInput } from './npy-input.ts';

/** The input kinds `--from` names. */
export const InputKind = {
  files: 'files',
  imagefolder: 'imagefolder',
  jsonl: 'jsonl',
  npy: 'npy',
} as const;
export type InputKind = (typeof InputKind)[keyof typeof InputKind];

/** One sample read from an input. */
export interface InputSample {
  /** Column name → value, as MDSWriter takes it. */
  readonly sample: Readonly<Record<string, unknown>>;
  /** Names the sample in errors: a file, `line 7`, `row 3`. */
  readonly where: string;
  /** Progress after this sample, in the input's unit (see {@link SampleInput.progress}). */
  readonly done: number;
}

/** A source of samples with its MDS columns. */
export interface SampleInput {
  readonly kind: InputKind;
  /** The input file or directory (absolute). */
  readonly path: string;
  /** Column name → MDS encoding. */
  readonly columns: Readonly<Record<string, string>>;
  /** Whether the columns were inferred from the data (JSONL's first line) rather than given. */
  readonly columnsInferred: boolean;
  /** How progress is counted: samples when the count is known up front, else bytes of the input. */
  readonly progress: { readonly unit: 'samples' | 'bytes'; readonly total: number };
  /** Facts for the summary, e.g. ImageFolder's classes. */
  readonly details: Readonly<Record<string, unknown>>;
  /** The samples, in order. Each call starts from the beginning. */
  samples(): AsyncIterable<InputSample>;
}

/** Options of {@link openInput}. */
export interface OpenInputOptions {
  /** Columns for JSONL (`--columns`); inferred from the first line when absent. */
  readonly columns?: Readonly<Record<string, string>> | undefined;
  readonly log?: Logger | undefined;
}

/** The extensions torchvision's ImageFolder accepts (lowercase). */
export const IMAGE_EXTENSIONS: readonly string[] = ['.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp'];
const JPEG_EXTENSIONS = new Set(['.jpg', '.jpeg']);
const JSONL_EXTENSIONS = new Set(['.jsonl', '.ndjson']);

/** Python's `sorted` order for strings: by code point (JavaScript's default sort compares UTF-16 units). */
export function compareCodePoints(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/**
 * What `--from auto` picks for `input`: a `.jsonl`/`.ndjson` file → jsonl; a `.npy` file, or a
 * directory whose entries are all `.npy` files → npy; a directory whose entries are all
 * directories (dot-files aside), with at least one image inside → imagefolder; any other
 * directory → files.
 * @throws ArgumentError naming `<input>` when it does not exist or cannot be told apart.
 */
export async function detectInputKind(input: string): Promise<InputKind> {
  const info = await statInput(input);
  if (info.isFile()) {
    const ext = path.extname(input).toLowerCase();
    if (JSONL_EXTENSIONS.has(ext)) return InputKind.jsonl;
    if (ext === '.npy') return InputKind.npy;
    throw new ArgumentError('<input>', `cannot tell what ${input} holds from its name; pass --from jsonl or --from npy`);
  }
  const entries = (await readdir(input, { withFileTypes: true })).filter((e) => !e.name.startsWith('.'));
  if (entries.length > 0 && entries.every((e) => e.isFile() && e.name.toLowerCase().endsWith('.npy'))) return InputKind.npy;
  if (entries.length > 0 && entries.every((e) => e.isDirectory())) {
    for (const e of entries) {
      const files = await readdir(path.join(input, e.name), { recursive: true });
      if (files.some((f) => IMAGE_EXTENSIONS.includes(path.extname(f).toLowerCase()))) return InputKind.imagefolder;
    }
  }
  return InputKind.files;
}

/**
 * Opens `input` as the given kind (or the detected one for `auto`).
 * @throws ArgumentError naming `<input>` or `--columns`; FormatError naming the file, line or
 *   row for malformed data found while opening (a bad `.npy` header, a JSONL first line that is
 *   not an object).
 */
export async function openInput(input: string, kind: InputKind | 'auto', options: OpenInputOptions = {}): Promise<SampleInput> {
  const resolved = path.resolve(input);
  const chosen = kind === 'auto' ? await detectInputKind(resolved) : kind;
  if (options.columns !== undefined && chosen !== InputKind.jsonl) {
    throw new ArgumentError('--columns', `applies to JSONL input only, but ${resolved} is read as ${chosen}`);
  }
  switch (chosen) {
    case InputKind.files:
      return openFilesInput(resolved);
    case InputKind.imagefolder:
      return openImageFolderInput(resolved, options.log);
    case InputKind.jsonl:
      return openJsonlInput(resolved, options.columns);
    case InputKind.npy:
      return openNpyInput(resolved);
  }
}

async function statInput(input: string): Promise<Awaited<ReturnType<typeof stat>>> {
  try {
    return await stat(input);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw new ArgumentError('<input>', code === 'ENOENT' ? `${input} does not exist` : `cannot read ${input}: ${(cause as Error).message}`, { cause });
  }
}

async function requireDirectory(input: string, kind: string): Promise<void> {
  if (!(await statInput(input)).isDirectory()) throw new ArgumentError('<input>', `${input} is not a directory, which --from ${kind} needs`);
}

// ---------------------------------------------------------------------------------------------
// A directory of files: one sample per file.

/**
 * Every regular file under `directory` (recursively; symbolic links to files too, linked
 * directories are not entered) as one sample `{ name, data }`: `name` is the path relative to
 * the directory with '/' separators, `data` the file's bytes. Sorted by `name`.
 */
async function openFilesInput(directory: string): Promise<SampleInput> {
  await requireDirectory(directory, 'files');
  const names: string[] = [];
  for (const entry of await readdir(directory, { withFileTypes: true, recursive: true })) {
    const full = path.join(entry.parentPath, entry.name);
    if (entry.isFile() || (entry.isSymbolicLink() && (await stat(full).catch(() => undefined))?.isFile() === true)) {
      names.push(path.relative(directory, full).split(path.sep).join('/'));
    }
  }
  names.sort(compareCodePoints);
  if (names.length === 0) throw new ArgumentError('<input>', `${directory} holds no files`);
  return {
    kind: InputKind.files,
    path: directory,
    columns: { data: 'bytes', name: 'str' },
    columnsInferred: false,
    progress: { unit: 'samples', total: names.length },
    details: { files: names.length },
    async *samples() {
      let done = 0;
      for (const name of names) {
        const data = await readFile(path.join(directory, ...name.split('/')));
        yield { sample: { name, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) }, where: name, done: ++done };
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------
// ImageFolder: root/<class>/**/<image>, as torchvision.datasets.ImageFolder reads it.

/** An image of an ImageFolder tree. */
interface ImageEntry {
  /** Relative to the root, '/'-separated. */
  readonly name: string;
  readonly label: number;
  readonly className: string;
}

const JPEG_MAGIC = Uint8Array.of(0xff, 0xd8, 0xff);
const PNG_MAGIC = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);

function startsWith(data: Uint8Array, magic: Uint8Array): boolean {
  return data.length >= magic.length && magic.every((b, i) => data[i] === b);
}

/**
 * torchvision's `make_dataset`: classes are the sorted names of the root's subdirectories
 * (label = position), and each class's images are found by `sorted(os.walk(class_dir,
 * followlinks=True))`, files sorted within each folder, kept when their extension is one of
 * {@link IMAGE_EXTENSIONS}. Shardline stores JPEG and PNG only: any other image is an error.
 */
async function openImageFolderInput(root: string, log: Logger | undefined): Promise<SampleInput> {
  await requireDirectory(root, 'imagefolder');
  const classes: string[] = [];
  for (const e of await readdir(root, { withFileTypes: true })) {
    if (e.isDirectory() || (e.isSymbolicLink() && (await stat(path.join(root, e.name)).catch(() => undefined))?.isDirectory() === true)) classes.push(e.name);
  }
  classes.sort(compareCodePoints);
  if (classes.length === 0) throw new ArgumentError('<input>', `${root} has no class folders (an ImageFolder tree is root/<class>/<image>)`);

  const images: ImageEntry[] = [];
  const empty: string[] = [];
  let skipped = 0;
  for (const [label, className] of classes.entries()) {
    const before = images.length;
    for (const file of await walkSorted(path.join(root, className))) {
      const ext = path.extname(file).toLowerCase();
      if (!IMAGE_EXTENSIONS.includes(ext)) {
        skipped++;
        continue;
      }
      const name = `${className}/${file}`;
      if (!JPEG_EXTENSIONS.has(ext) && ext !== '.png') {
        throw new FormatError(`${path.join(root, name)}: ${ext} images are not supported; Shardline stores JPEG and PNG (convert the others first)`);
      }
      images.push({ name, label, className });
    }
    if (images.length === before) empty.push(className);
  }
  if (empty.length > 0) {
    throw new FormatError(`${root}: found no image in the class folder(s) ${empty.map((c) => JSON.stringify(c)).join(', ')}; supported extensions: ${IMAGE_EXTENSIONS.join(', ')}`);
  }
  if (skipped > 0) log?.info({ event: 'write.skipped', files: skipped }, 'files without an image extension were skipped, as torchvision does');
  const pngs = images.filter((i) => path.extname(i.name).toLowerCase() === '.png').length;
  // One encoding per column: all-PNG trees get `png`; anything with a JPEG gets `jpeg`.
  const encoding = pngs === images.length ? 'png' : 'jpeg';
  if (pngs > 0 && encoding === 'jpeg') {
    log?.warn({ event: 'write.mixed-images', png: pngs, jpeg: images.length - pngs }, 'PNG images are stored in the jpeg column as they are; readers decode images by content');
  }
  return {
    kind: InputKind.imagefolder,
    path: root,
    columns: { class: 'str', image: encoding, label: 'int' },
    columnsInferred: false,
    progress: { unit: 'samples', total: images.length },
    details: { classes: classes.length, images: images.length, imageEncoding: encoding },
    async *samples() {
      let done = 0;
      for (const image of images) {
        const file = path.join(root, ...image.name.split('/'));
        const data = await readFile(file);
        if (!startsWith(data, JPEG_MAGIC) && !startsWith(data, PNG_MAGIC)) throw new FormatError(`${file}: not a JPEG or PNG image (its first bytes are neither)`);
        yield {
          sample: { class: image.className, image: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), label: image.label },
          where: image.name,
          done: ++done,
        };
      }
    },
  };
}

/**
 * Files under `dir` in the order of `sorted(os.walk(dir, followlinks=True))` (folders sorted by
 * their full path, then files sorted within each folder), relative to `dir` with '/'. Linked
 * folders are entered once: a link back to a folder already walked is not followed again.
 */
async function walkSorted(dir: string): Promise<string[]> {
  const folders: { rel: string; files: string[] }[] = [];
  const seen = new Set<string>();
  const visit = async (rel: string): Promise<void> => {
    const full = rel === '' ? dir : path.join(dir, ...rel.split('/'));
    const real = await realpath(full);
    if (seen.has(real)) return;
    seen.add(real);
    const files: string[] = [];
    const subfolders: string[] = [];
    for (const e of await readdir(full, { withFileTypes: true })) {
      const isDir = e.isDirectory() || (e.isSymbolicLink() && (await stat(path.join(full, e.name)).catch(() => undefined))?.isDirectory() === true);
      (isDir ? subfolders : files).push(e.name);
    }
    folders.push({ rel, files: files.sort(compareCodePoints) });
    for (const sub of subfolders) await visit(rel === '' ? sub : `${rel}/${sub}`);
  };
  await visit('');
  // os.walk yields (root, dirs, files) with root = class_dir joined with the relative path.
  const rootKey = (rel: string): string => (rel === '' ? dir : `${dir}/${rel}`);
  folders.sort((a, b) => compareCodePoints(rootKey(a.rel), rootKey(b.rel)));
  return folders.flatMap((f) => f.files.map((name) => (f.rel === '' ? name : `${f.rel}/${name}`)));
}
