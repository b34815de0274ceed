/**
 * From a collated batch to the named tensors of the wire format: tensors are kept under their
 * field path (`image`, `meta.size`, `pair.0`), everything that is not a tensor (lists of
 * strings, of variable-length bytes, JSON values) is left out and named, so the pipeline can say
 * once which fields a trainer will not see.
 */
import { isTensor, type Tensor } from '@shardline/core';

/** The tensors of a collated batch, and the paths of the fields that are not tensors. */
export interface BatchTensors {
  readonly tensors: Record<string, Tensor>;
  readonly skipped: string[];
}

/**
 * Flattens a collated batch (defaultCollate's output) into `path → Tensor`.
 * @example
 * batchTensors({ x: tensor('float32', [2, 3], data), name: ['a', 'b'] })
 * // { tensors: { x: … }, skipped: ['name'] }
 */
export function batchTensors(batch: unknown): BatchTensors {
  const tensors: Record<string, Tensor> = {};
  const skipped: string[] = [];
  const visit = (value: unknown, path: string): void => {
    if (isTensor(value)) {
      Object.defineProperty(tensors, path === '' ? 'data' : path, { value, enumerable: true, writable: true, configurable: true });
      return;
    }
    const fields = fieldsOf(value);
    if (fields === undefined) {
      skipped.push(path === '' ? '(root)' : path);
      return;
    }
    for (const [key, child] of fields) visit(child, path === '' ? key : `${path}.${key}`);
  };
  visit(batch, '');
  return { tensors, skipped };
}

/** The children of a collated tuple (array whose items are collated fields) or plain object; undefined for leaves. */
function fieldsOf(value: unknown): Array<[string, unknown]> | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  if (Array.isArray(value)) {
    // A tuple collates to an array of collated fields; a list of strings or raw values is a leaf.
    return value.length > 0 && value.every((v) => isTensor(v) || isPlainObject(v)) ? value.map((v, i) => [String(i), v]) : undefined;
  }
  return isPlainObject(value) ? Object.entries(value) : undefined;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || isTensor(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}
