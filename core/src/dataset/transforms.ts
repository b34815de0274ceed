/**
 * Transforms: functions from one sample to another (sync or async), their composition, a
 * dataset wrapper that applies one on `get`, and a few transforms on tensors. Random transforms
 * take their Generator explicitly: no hidden global randomness, every augmentation reproducible.
 */
import { ArgumentError, ShapeMismatchError } from '../errors.ts';
import { Generator } from '../random.ts';
import { isTensor, numel, typedArrayConstructor } from '../tensor.ts';
import type { Tensor } from '../tensor.ts';
import { normalizeIndex, requireFinite, requireInt } from '../validate.ts';
import type { Dataset } from './dataset.ts';
import { isDataset } from './dataset.ts';

/** A sample transform; it may be async (decoding, I/O). */
export type Transform<A, B> = (x: A) => B | Promise<B>;

/**
 * Chains transforms left to right. The result is synchronous as long as every step is: a
 * promise appears only once a step returns one.
 *
 * @example
 * const prepare = compose(toFloat32, normalize({ mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] }));
 */
export function compose<A>(): Transform<A, A>;
export function compose<A, B>(t1: Transform<A, B>): Transform<A, B>;
export function compose<A, B, C>(t1: Transform<A, B>, t2: Transform<B, C>): Transform<A, C>;
export function compose<A, B, C, D>(t1: Transform<A, B>, t2: Transform<B, C>, t3: Transform<C, D>): Transform<A, D>;
export function compose<A, B, C, D, E>(
  t1: Transform<A, B>,
  t2: Transform<B, C>,
  t3: Transform<C, D>,
  t4: Transform<D, E>,
): Transform<A, E>;
export function compose<A, B, C, D, E, F>(
  t1: Transform<A, B>,
  t2: Transform<B, C>,
  t3: Transform<C, D>,
  t4: Transform<D, E>,
  t5: Transform<E, F>,
): Transform<A, F>;
export function compose(...transforms: Transform<unknown, unknown>[]): Transform<unknown, unknown>;
export function compose(...transforms: Transform<unknown, unknown>[]): Transform<unknown, unknown> {
  transforms.forEach((t, k) => {
    if (typeof t !== 'function') throw new ArgumentError(`transforms[${k}]`, `must be a function, got ${typeof t}`);
  });
  const steps = [...transforms];
  const from = (start: number, x: unknown): unknown => {
    let value = x;
    for (let k = start; k < steps.length; k++) {
      if (isThenable(value)) return value.then((v) => from(k, v));
      value = steps[k]!(value);
    }
    return value;
  };
  return (x) => from(0, x);
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === 'object' || typeof value === 'function') && value !== null && typeof (value as PromiseLike<unknown>).then === 'function';
}

/**
 * A dataset whose samples are `transform(dataset.get(i))`. Lazy: nothing runs until `get`.
 *
 * @example
 * const images = new MapDataset(folder, ({ image, label }) => ({ image: toFloat32(image), label }));
 */
export class MapDataset<A, B> implements Dataset<B> {
  readonly dataset: Dataset<A>;
  readonly transform: Transform<A, B>;

  constructor(dataset: Dataset<A>, transform: Transform<A, B>) {
    if (!isDataset(dataset)) throw new ArgumentError('dataset', 'must be a Dataset (with length and get)');
    if (typeof transform !== 'function') throw new ArgumentError('transform', `must be a function, got ${typeof transform}`);
    this.dataset = dataset;
    this.transform = transform;
  }

  get length(): number {
    return this.dataset.length;
  }

  get(index: number): B | Promise<B> {
    const sample = this.dataset.get(normalizeIndex(index, this.dataset.length));
    return isThenable(sample) ? Promise.resolve(sample).then(this.transform) : this.transform(sample);
  }
}

/** Same as `new MapDataset(dataset, transform)`. */
export function withTransform<A, B>(dataset: Dataset<A>, transform: Transform<A, B>): MapDataset<A, B> {
  return new MapDataset(dataset, transform);
}

/**
 * Converts a tensor to float32: uint8 values are scaled to [0, 1] (divided by 255), other
 * dtypes keep their values (float16 and bfloat16 bits are decoded, bool becomes 0/1).
 */
export function toFloat32(t: Tensor): Tensor {
  requireTensor('tensor', t);
  const src = t.data;
  const out = new Float32Array(src.length);
  if (t.dtype === 'uint8') {
    for (let k = 0; k < src.length; k++) out[k] = (src[k] as number) / 255;
  } else if (t.dtype === 'float16') {
    for (let k = 0; k < src.length; k++) out[k] = halfToFloat(src[k] as number);
  } else if (t.dtype === 'bfloat16') {
    const bits = new Uint32Array(out.buffer);
    for (let k = 0; k < src.length; k++) bits[k] = (src[k] as number) << 16;
  } else {
    for (let k = 0; k < src.length; k++) out[k] = Number(src[k]);
  }
  return { dtype: 'float32', shape: [...t.shape], data: out };
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 0x1f) return fraction === 0 ? sign * Infinity : NaN;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

export interface NormalizeOptions {
  /** Per-channel means (or one for all channels). */
  mean: number | readonly number[];
  /** Per-channel standard deviations, each > 0 (or one for all channels). */
  std: number | readonly number[];
  /** The channel axis (default -1, the last: images are [H, W, C]); negative counts from the end. */
  channelAxis?: number;
}

/**
 * `(x − mean[c]) / std[c]` per channel, as float32. Values are taken as they are (no /255):
 * put `toFloat32` first to normalize [0, 1] images.
 *
 * @example
 * const norm = normalize({ mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] }); // for [H, W, 3]
 */
export function normalize(options: NormalizeOptions): Transform<Tensor, Tensor> {
  if (typeof options !== 'object' || options === null) throw new ArgumentError('options', 'must be {mean, std}');
  const mean = numbers('mean', options.mean);
  const std = numbers('std', options.std);
  std.forEach((s, k) => {
    if (!(s > 0)) throw new ArgumentError(`std[${k}]`, `must be > 0, got ${s}`);
  });
  if (mean.length !== std.length && mean.length !== 1 && std.length !== 1) {
    throw new ArgumentError('std', `has ${std.length} values but mean has ${mean.length}`);
  }
  const channelAxis = requireInt('channelAxis', options.channelAxis ?? -1, { min: -64, max: 63 });
  return (t) => {
    requireTensor('tensor', t);
    const rank = t.shape.length;
    const axis = channelAxis < 0 ? channelAxis + rank : channelAxis;
    if (axis < 0 || axis >= rank) {
      throw new ShapeMismatchError(`normalize: channelAxis ${channelAxis} does not exist in shape [${t.shape.join(', ')}]`);
    }
    const channels = t.shape[axis]!;
    for (const [name, values] of [['mean', mean], ['std', std]] as const) {
      if (values.length !== 1 && values.length !== channels) {
        throw new ShapeMismatchError(
          `normalize: ${name} has ${values.length} values but the tensor has ${channels} channels (axis ${axis} of [${t.shape.join(', ')}])`,
        );
      }
    }
    const inner = numel(t.shape.slice(axis + 1));
    const x = t.dtype === 'float32' || t.dtype === 'uint8' ? t : toFloat32(t);
    const src = x.data;
    const out = new Float32Array(src.length);
    for (let k = 0; k < src.length; k++) {
      const c = Math.floor(k / inner) % channels;
      out[k] = ((src[k] as number) - (mean.length === 1 ? mean[0]! : mean[c]!)) / (std.length === 1 ? std[0]! : std[c]!);
    }
    return { dtype: 'float32', shape: [...t.shape], data: out };
  };
}

export interface RandomHorizontalFlipOptions {
  /** The generator that decides; pass one per worker (e.g. seeded with seed, epoch, worker). */
  generator: Generator;
  /** Probability of a flip (default 0.5). */
  p?: number;
  /** The width axis (default -2: images are [H, W, C]; use -1 for [C, H, W] or [H, W]). */
  axis?: number;
}

/**
 * Mirrors a tensor along its width axis with probability `p`, drawing from the generator it is
 * given. Returns the input itself when it does not flip, a new tensor when it does.
 *
 * @example
 * const flip = randomHorizontalFlip({ generator: new Generator(seed, epoch, workerId) });
 */
export function randomHorizontalFlip(options: RandomHorizontalFlipOptions): Transform<Tensor, Tensor> {
  if (typeof options !== 'object' || options === null) throw new ArgumentError('options', 'must be {generator, p?, axis?}');
  if (!(options.generator instanceof Generator)) {
    throw new ArgumentError('generator', 'must be a Generator (from core/src/random.ts)');
  }
  const generator = options.generator;
  const p = requireFinite('p', options.p ?? 0.5, { min: 0, max: 1 });
  const axisOption = requireInt('axis', options.axis ?? -2, { min: -64, max: 63 });
  return (t) => {
    requireTensor('tensor', t);
    if (!(generator.random() < p)) return t;
    return flip(t, axisOption);
  };
}

/** The tensor mirrored along `axis` (negative counts from the end); a new tensor. */
export function flip(t: Tensor, axis: number): Tensor {
  requireTensor('tensor', t);
  const rank = t.shape.length;
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) {
    throw new ShapeMismatchError(`flip: axis ${axis} does not exist in shape [${t.shape.join(', ')}]`);
  }
  const n = t.shape[a]!;
  const inner = numel(t.shape.slice(a + 1));
  const outer = numel(t.shape.slice(0, a));
  const src = t.data;
  const out = new (typedArrayConstructor(t.dtype))(src.length);
  for (let o = 0; o < outer; o++) {
    const base = o * n * inner;
    for (let j = 0; j < n; j++) {
      const from = base + (n - 1 - j) * inner;
      out.set(src.subarray(from, from + inner) as never, base + j * inner);
    }
  }
  return { dtype: t.dtype, shape: [...t.shape], data: out };
}

function requireTensor(name: string, t: unknown): asserts t is Tensor {
  if (!isTensor(t)) throw new ArgumentError(name, 'must be a tensor {dtype, shape, data}');
}

function numbers(name: string, value: number | readonly number[]): number[] {
  const values = typeof value === 'number' ? [value] : value;
  if (!Array.isArray(values) || values.length === 0) throw new ArgumentError(name, 'must be a number or a non-empty array of numbers');
  return values.map((v, k) => requireFinite(`${name}[${k}]`, v));
}
