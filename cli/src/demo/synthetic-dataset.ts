/**
 * The demo's generated dataset: sample i is a 3×32×32 float32 "image" computed from i, a label
 * and its id. `decodeRounds` adds CPU work per sample so worker threads have something to do,
 * like JPEG decoding would. A module with a factory, so DataLoader worker threads can build it.
 */
import type { Dataset } from '@shardline/core';
import { mix32, tensor, type Tensor } from '@shardline/core';

export interface SyntheticSample {
  image: Tensor;
  label: number;
  id: number;
}

export interface SyntheticDatasetArgs {
  length: number;
  classes?: number;
  decodeRounds?: number;
}

/** Size in bytes a sample would have on disk: varies per sample, for the load-balanced plan. */
export function syntheticSampleBytes(id: number): number {
  return 2_000 + (mix32(id ^ 0x5a5a) % 30_000);
}

export class SyntheticDataset implements Dataset<SyntheticSample> {
  readonly length: number;
  readonly #classes: number;
  readonly #rounds: number;

  constructor({ length, classes = 10, decodeRounds = 2 }: SyntheticDatasetArgs) {
    this.length = length;
    this.#classes = classes;
    this.#rounds = decodeRounds;
  }

  get(id: number): SyntheticSample {
    const data = new Float32Array(3 * 32 * 32);
    let h = mix32(id);
    for (let round = 0; round < this.#rounds; round++) {
      for (let p = 0; p < data.length; p++) {
        h = mix32(h + p);
        data[p] = (data[p]! + (h & 0xff) / 255) / (round + 1);
      }
    }
    return { image: tensor('float32', [3, 32, 32], data), label: id % this.#classes, id };
  }
}

/** Factory for DataLoader workers: `{ module: import.meta.url-of-this-file, export: 'createDataset' }`. */
export function createDataset(args: SyntheticDatasetArgs): SyntheticDataset {
  return new SyntheticDataset(args);
}
