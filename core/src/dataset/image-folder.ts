/**
 * ImageFolder: an image classification dataset laid out as `root/<class>/<...>/<image>`.
 * Classes are the sorted subfolder names, samples are sorted paths (the same order on every
 * machine), and images decode with sharp into uint8 tensors [H, W, C].
 */
import fs from 'node:fs';
import path from 'node:path';
import { ImageChannels, decodeImage } from './image-decode.ts';
import { ArgumentError, DatasetError } from '../errors.ts';
import type { Tensor } from '../tensor.ts';
import { normalizeIndex } from '../validate.ts';
import type { Dataset } from './dataset.ts';
import type { Transform } from './transforms.ts';

export { ImageChannels } from './image-decode.ts';

export interface ImageFolderOptions<I> {
  /** The folder holding one subfolder per class. */
  root: string;
  /** File extensions that count as images, case-insensitive (default .jpg, .jpeg, .png). */
  extensions?: readonly string[];
  /** Applied to each image (the decoded tensor, or the file bytes with `decode: false`). */
  transform?: Transform<Tensor, I>;
  /** Decode with sharp (default true); false gives the file's bytes as a uint8 tensor [byteLength]. */
  decode?: boolean;
  /** Channels after decoding: 1 (grey), 3 (RGB, the default: alpha removed), 4 (RGBA) or 'keep'. */
  channels?: ImageChannels;
}

/** One image file and its class index. */
export interface ImageFolderEntry {
  readonly path: string;
  readonly label: number;
}

/** A sample: the image (transformed, if a transform was given) and its class index. */
export interface ImageSample<I> {
  image: I;
  label: number;
}

const DEFAULT_EXTENSIONS = ['.jpg', '.jpeg', '.png'] as const;

/**
 * Images in class folders. The folder tree is scanned once, at construction; a symlink that
 * leads outside `root` is refused.
 *
 * @example
 * const ds = new ImageFolder({ root: 'data/train', transform: toFloat32 });
 * ds.classes;             // ['cat', 'dog']
 * const { image, label } = await ds.get(0); // image: float32 [H, W, 3]
 */
export class ImageFolder<I = Tensor> implements Dataset<ImageSample<I>> {
  readonly root: string;
  readonly classes: readonly string[];
  readonly classToIndex: ReadonlyMap<string, number>;
  readonly samples: readonly ImageFolderEntry[];
  readonly extensions: readonly string[];
  readonly decode: boolean;
  readonly channels: ImageChannels;
  readonly transform: Transform<Tensor, I> | undefined;

  constructor(options: ImageFolderOptions<I>) {
    if (typeof options !== 'object' || options === null) throw new ArgumentError('options', 'must be an object with root');
    if (typeof options.root !== 'string' || options.root.length === 0) {
      throw new ArgumentError('root', `must be a non-empty folder path, got ${JSON.stringify(options.root) ?? String(options.root)}`);
    }
    const extensions = options.extensions ?? DEFAULT_EXTENSIONS;
    if (!Array.isArray(extensions) || extensions.length === 0) {
      throw new ArgumentError('extensions', 'must be a non-empty array like [".png"]');
    }
    extensions.forEach((e, k) => {
      if (typeof e !== 'string' || !/^\.[^./\\]+$/.test(e)) {
        throw new ArgumentError(`extensions[${k}]`, `must look like ".png", got ${JSON.stringify(e) ?? String(e)}`);
      }
    });
    if (options.transform !== undefined && typeof options.transform !== 'function') {
      throw new ArgumentError('transform', `must be a function, got ${typeof options.transform}`);
    }
    if (options.decode !== undefined && typeof options.decode !== 'boolean') {
      throw new ArgumentError('decode', `must be a boolean, got ${String(options.decode)}`);
    }
    const channels = options.channels ?? 3;
    if (!Object.values(ImageChannels).includes(channels)) {
      throw new ArgumentError('channels', `must be 1, 3, 4 or 'keep', got ${JSON.stringify(channels)}`);
    }

    let root: string;
    try {
      root = fs.realpathSync(options.root);
      if (!fs.statSync(root).isDirectory()) throw new Error('not a directory');
    } catch (error) {
      throw new ArgumentError('root', `${options.root} is not a readable folder: ${(error as Error).message}`, { cause: error });
    }
    this.root = root;
    this.extensions = extensions.map((e) => e.toLowerCase());
    this.decode = options.decode ?? true;
    this.channels = channels;
    this.transform = options.transform;

    const classes = listDir(root)
      .filter((entry) => resolveInside(root, path.join(root, entry.name), entry).isDirectory())
      .map((entry) => entry.name)
      .sort(byCodeUnits);
    const samples: ImageFolderEntry[] = [];
    classes.forEach((name, label) => {
      for (const file of this.#images(path.join(root, name))) samples.push({ path: file, label });
    });
    this.classes = classes;
    this.classToIndex = new Map(classes.map((name, k) => [name, k]));
    this.samples = samples;
  }

  get length(): number {
    return this.samples.length;
  }

  /** Reads, decodes and transforms image `index` (negative counts from the end). */
  async get(index: number): Promise<ImageSample<I>> {
    const i = normalizeIndex(index, this.samples.length);
    const entry = this.samples[i]!;
    let bytes: Buffer;
    try {
      bytes = await fs.promises.readFile(entry.path);
    } catch (error) {
      throw new DatasetError(`cannot read image ${entry.path}: ${(error as Error).message}`, { cause: error, index: i });
    }
    const tensor = this.decode ? await this.#decode(bytes, entry.path, i) : rawBytes(bytes);
    const image = this.transform === undefined ? (tensor as I) : await this.transform(tensor);
    return { image, label: entry.label };
  }

  async #decode(bytes: Buffer, file: string, index: number): Promise<Tensor> {
    try {
      return await decodeImage(bytes, this.channels);
    } catch (error) {
      throw new DatasetError(`cannot decode image ${file}: ${(error as Error).message}`, { cause: error, index });
    }
  }

  /** Image files under `dir`, recursively, in code-unit order of their paths. */
  #images(dir: string): string[] {
    const out: string[] = [];
    // Real paths of the folders on the current branch: a symlink back to one of them is a cycle.
    const branch = new Set<string>();
    const walk = (current: string): void => {
      const real = fs.realpathSync(current);
      if (branch.has(real)) throw new DatasetError(`symlink cycle: ${current} leads back to ${real}`);
      branch.add(real);
      for (const entry of listDir(current).sort((a, b) => byCodeUnits(a.name, b.name))) {
        const full = path.join(current, entry.name);
        const stat = resolveInside(this.root, full, entry);
        if (stat.isDirectory()) walk(full);
        else if (stat.isFile() && this.extensions.includes(path.extname(entry.name).toLowerCase())) out.push(full);
      }
      branch.delete(real);
    };
    walk(dir);
    return out;
  }
}

function listDir(dir: string): fs.Dirent[] {
  try {
    return fs.readdirSync(dir, { withFileTypes: true });
  } catch (error) {
    throw new DatasetError(`cannot list ${dir}: ${(error as Error).message}`, { cause: error });
  }
}

/** The stat of an entry, following a symlink only if it stays inside `root`. */
function resolveInside(root: string, full: string, entry: fs.Dirent): fs.Stats {
  if (entry.isSymbolicLink()) {
    let target: string;
    try {
      target = fs.realpathSync(full);
    } catch (error) {
      throw new DatasetError(`broken symlink ${full}: ${(error as Error).message}`, { cause: error });
    }
    const relative = path.relative(root, target);
    if (relative === '..' || relative.startsWith(`..${path.sep}`) || path.isAbsolute(relative)) {
      throw new DatasetError(`symlink ${full} points to ${target}, outside the dataset root ${root}; refusing to follow it`);
    }
  }
  return fs.statSync(full);
}

function byCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function rawBytes(bytes: Buffer): Tensor {
  // A copy: a small Buffer may be a slice of a shared pool.
  return { dtype: 'uint8', shape: [bytes.length], data: new Uint8Array(bytes) };
}
