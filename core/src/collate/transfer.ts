/**
 * Zero-copy hand-over of batches between threads: finds the ArrayBuffers of a batch that can be
 * put in a `postMessage` transfer list, so tensors move from a worker to the main thread instead
 * of being copied.
 */
import type { TypedArray } from '../tensor.ts';
import { isTypedArray } from '../tensor.ts';

/** Calls `visit` on every typed array in `value` (through arrays and plain objects, tensors included). */
function eachTypedArray(value: unknown, visit: (array: TypedArray) => void): void {
  const seen = new Set<object>();
  const walk = (v: unknown, depth: number): void => {
    if (typeof v !== 'object' || v === null || depth > 64 || seen.has(v)) return;
    seen.add(v);
    if (isTypedArray(v)) {
      visit(v);
      return;
    }
    if (Array.isArray(v)) {
      for (const item of v) walk(item, depth + 1);
      return;
    }
    const proto: unknown = Object.getPrototypeOf(v);
    if (proto === Object.prototype || proto === null) {
      for (const item of Object.values(v)) walk(item, depth + 1);
    }
  };
  walk(value, 0);
}

/** Every ArrayBuffer (or SharedArrayBuffer) under the typed arrays of `value`. */
export function buffersOf(value: unknown): Set<ArrayBufferLike> {
  const out = new Set<ArrayBufferLike>();
  eachTypedArray(value, (a) => out.add(a.buffer));
  return out;
}

/**
 * The ArrayBuffers under the typed arrays of `value` (searched through arrays and plain objects,
 * tensors included), each once, that are safe to transfer: only buffers a single view covers
 * entirely. A view onto part of a larger buffer (a row of a dataset's tensor, Node's pooled
 * Buffers) is left out, since transferring would detach memory the sender still uses; it is
 * copied instead. SharedArrayBuffers are shared, never transferred. Buffers in `exclude` (e.g.
 * those of the samples, which a dataset may cache) are left out too.
 *
 * Transferring detaches the buffers in the sender: call this only on a batch the sender is done
 * with (as the DataLoader's workers are, right after collate).
 *
 * @example worker.postMessage(batch, transferListOf(batch))
 */
export function transferListOf(value: unknown, exclude?: ReadonlySet<ArrayBufferLike>): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  eachTypedArray(value, (v) => {
    const buffer = v.buffer;
    if (
      buffer instanceof ArrayBuffer &&
      v.byteOffset === 0 &&
      v.byteLength === buffer.byteLength &&
      buffer.byteLength > 0 &&
      !exclude?.has(buffer)
    ) {
      out.add(buffer);
    }
  });
  return [...out];
}
