/**
 * Collate for batches that carry metadata (sample ids, file paths, original image sizes) next to
 * their tensors: the data is collated, the metadata is gathered into plain per-key lists, so a
 * trainer can log or trace every sample of a batch without the metadata being forced into tensors.
 */
import { ArgumentError, ShapeMismatchError } from '../errors.ts';
import type { CollateFn } from './default-collate.ts';
import { defaultCollate } from './default-collate.ts';

/** A batch with its metadata: `metadata[key][i]` belongs to sample i of `data`. */
export interface BatchWithMetadata<D = unknown> {
  data: D;
  metadata: Record<string, unknown[]>;
}

export interface MetadataCollateOptions {
  /**
   * Keys of object samples that are metadata. Without it, samples must be `[data, metadata]`
   * pairs (the PyTorch `image_metadata_collate` shape) whose metadata is a plain object.
   */
  metadataKeys?: readonly string[];
  /** Collates the data part (default `defaultCollate`); may be a padSequenceCollate, etc. */
  collate?: CollateFn;
}

/**
 * Makes a collate function for samples with metadata.
 *
 * @example
 * const collate = collateWithMetadata({ metadataKeys: ['id', 'path'] });
 * collate([{ image, id: 7, path: 'a.jpg' }, { image, id: 9, path: 'b.jpg' }]);
 * // → { data: { image: Tensor [2, ...] }, metadata: { id: [7, 9], path: ['a.jpg', 'b.jpg'] } }
 * @example
 * collateWithMetadata()([[image, { size: [480, 640] }], [image, { size: [512, 512] }]]);
 * // → { data: Tensor [2, ...], metadata: { size: [[480, 640], [512, 512]] } }
 */
export function collateWithMetadata<D = unknown>(
  options: MetadataCollateOptions = {},
): CollateFn<unknown, BatchWithMetadata<D>> {
  const keys = options.metadataKeys;
  if (keys !== undefined && (!Array.isArray(keys) || keys.some((k) => typeof k !== 'string' || k === ''))) {
    throw new ArgumentError('metadataKeys', `must be an array of field names, got ${JSON.stringify(keys)}`);
  }
  const collate = options.collate ?? (defaultCollate as CollateFn);
  if (typeof collate !== 'function') throw new ArgumentError('collate', 'must be a function');

  return (samples: readonly unknown[]) => {
    if (!Array.isArray(samples) || samples.length === 0) {
      throw new ArgumentError('samples', 'must be a non-empty array');
    }
    const data: unknown[] = [];
    const metas: Record<string, unknown>[] = [];
    samples.forEach((sample, i) => {
      if (keys === undefined) {
        if (!Array.isArray(sample) || sample.length !== 2) {
          throw new ShapeMismatchError(`sample ${i} is not a [data, metadata] pair (give metadataKeys for object samples)`);
        }
        const meta: unknown = sample[1];
        if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) {
          throw new ShapeMismatchError(`field "1": sample ${i} has metadata that is not an object`);
        }
        data.push(sample[0]);
        metas.push(meta as Record<string, unknown>);
        return;
      }
      if (typeof sample !== 'object' || sample === null || Array.isArray(sample)) {
        throw new ShapeMismatchError(`sample ${i} is not an object with fields ${JSON.stringify(keys)}`);
      }
      const rest: Record<string, unknown> = {};
      const meta: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(sample)) (keys.includes(k) ? meta : rest)[k] = v;
      for (const k of keys) {
        if (!Object.hasOwn(meta, k)) throw new ShapeMismatchError(`field "${k}": missing in sample ${i}`);
      }
      data.push(rest);
      metas.push(meta);
    });

    const names = keys ?? Object.keys(metas[0]!);
    const metadata: Record<string, unknown[]> = {};
    for (const name of names) metadata[name] = [];
    metas.forEach((meta, i) => {
      for (const name of names) {
        if (!Object.hasOwn(meta, name)) {
          throw new ShapeMismatchError(`field "${keys ? name : `1.${name}`}": missing in sample ${i} (present in sample 0)`);
        }
        metadata[name]!.push(meta[name]);
      }
      if (keys === undefined && Object.keys(meta).length !== names.length) {
        const extra = Object.keys(meta).find((k) => !names.includes(k));
        throw new ShapeMismatchError(`field "1.${extra}": present in sample ${i} but not in sample 0`);
      }
    });

    const collated = collate(data);
    if (isPromiseLike(collated)) return Promise.resolve(collated).then((d) => ({ data: d as D, metadata }));
    return { data: collated as D, metadata };
  };
}

function isPromiseLike(v: unknown): v is PromiseLike<unknown> {
  return typeof v === 'object' && v !== null && typeof (v as PromiseLike<unknown>).then === 'function';
}
