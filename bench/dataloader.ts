/**
 * Benchmark `dataloader`: samples per second of the DataLoader with 0, 1 and 2 worker threads on
 * a CPU-bound synthetic decode (each sample costs a few tenths of a millisecond of arithmetic, like
 * decoding and augmenting a small image), same shuffled sampler and batch size for all three.
 * Goal on a 2-core machine: 2 workers ≥ 1.7× 0 workers.
 *
 * This module is also the dataset module the workers import (`syntheticDecode`).
 */
import type { BenchOptions } from './run.ts';
import type { Dataset } from '../core/src/dataset/dataset.ts';
import { mix32 } from '../core/src/random.ts';
import { DataLoader } from '../core/src/loader/dataloader.ts';

const SIDE = 32;
const CHANNELS = 3;

export interface DecodeArgs {
  length: number;
  /** Blur passes per sample: the knob for CPU cost per sample. */
  passes: number;
}

export interface DecodedSample {
  image: Float32Array;
  label: bigint;
}

/**
 * A dataset whose `get` "decodes" a 32×32×3 image: pixels from a hash of the index, then
 * `passes` 3×3 box-blur passes. Pure CPU, deterministic.
 */
export function syntheticDecode(args: DecodeArgs): Dataset<DecodedSample> {
  const n = SIDE * SIDE * CHANNELS;
  return {
    length: args.length,
    get(index: number): DecodedSample {
      let a = new Float32Array(n);
      let b = new Float32Array(n);
      let h = mix32(index);
      for (let i = 0; i < n; i++) {
        h = mix32(h + i);
        a[i] = (h & 0xff) / 255;
      }
      for (let p = 0; p < args.passes; p++) {
        for (let c = 0; c < CHANNELS; c++) {
          for (let y = 0; y < SIDE; y++) {
            for (let x = 0; x < SIDE; x++) {
              let sum = 0;
              let count = 0;
              for (let dy = -1; dy <= 1; dy++) {
                const yy = y + dy;
                if (yy < 0 || yy >= SIDE) continue;
                for (let dx = -1; dx <= 1; dx++) {
                  const xx = x + dx;
                  if (xx < 0 || xx >= SIDE) continue;
                  sum += a[(yy * SIDE + xx) * CHANNELS + c]!;
                  count++;
                }
              }
              b[(y * SIDE + x) * CHANNELS + c] = sum / count;
            }
          }
        }
        [a, b] = [b, a];
      }
      return { image: a, label: BigInt(index % 10) };
    },
  };
}

const MODULE = new URL(import.meta.url);

type Batch = { image: { data: Float32Array } };

function makeLoader(numWorkers: number, args: DecodeArgs, batchSize: number): DataLoader<DecodedSample, Batch> {
  return new DataLoader<DecodedSample, Batch>(
    { module: MODULE, export: 'syntheticDecode', args, length: args.length },
    {
      batchSize,
      shuffle: true,
      seed: 0,
      numWorkers,
      ...(numWorkers > 0 ? { persistentWorkers: true, prefetchFactor: 4 } : {}),
    },
  );
}

/** One epoch; returns samples per second. */
async function epoch(loader: DataLoader<DecodedSample, Batch>): Promise<number> {
  const t0 = performance.now();
  let samples = 0;
  let checksum = 0;
  for await (const batch of loader) {
    samples += batch.image.data.length / (SIDE * SIDE * CHANNELS);
    checksum += batch.image.data[0]!;
  }
  if (!Number.isFinite(checksum)) throw new Error('bad checksum');
  return (samples / (performance.now() - t0)) * 1000;
}

export async function run(o: BenchOptions): Promise<Record<string, number>> {
  const args: DecodeArgs = { length: o.quick ? 512 : 4096, passes: 3 };
  const epochs = o.quick ? 1 : 5;
  const batchSize = 32;
  // No direct call of syntheticDecode here: a second closure of its `get` in this thread would
  // cost V8's function-context specialization and slow the 0-worker case down unfairly.
  o.log(`${args.length} samples × ${epochs} rounds, batch ${batchSize}, ${args.passes} blur passes per sample`);
  const workers = [0, 1, 2];
  const loaders = workers.map((w) => makeLoader(w, args, batchSize));
  const rates: number[][] = workers.map(() => []);
  try {
    // Warm-up: start the workers and let the JIT compile the hot loops in every thread.
    for (const loader of loaders) {
      let n = 0;
      for await (const _ of loader) if (++n === 8) break;
    }
    // Rounds interleave the three set-ups so that noise from a shared machine hits all alike.
    for (let round = 0; round < epochs; round++) {
      for (let k = 0; k < loaders.length; k++) rates[k]!.push(await epoch(loaders[k]!));
      o.log(`round ${round}: ${workers.map((w, k) => `w${w} ${rates[k]!.at(-1)!.toFixed(0)}`).join(', ')} samples/s`);
    }
  } finally {
    await Promise.all(loaders.map((l) => l.close()));
  }
  const [w0, w1, w2] = rates.map(median) as [number, number, number];
  o.log(`medians: w0 ${w0.toFixed(0)}, w1 ${w1.toFixed(0)}, w2 ${w2.toFixed(0)} samples/s (decode ≈ ${(1000 / w0).toFixed(3)} ms/sample)`);
  return {
    samples_per_sec_w0: Math.round(w0),
    samples_per_sec_w1: Math.round(w1),
    samples_per_sec_w2: Math.round(w2),
    // Median of the per-round ratios: each ratio compares runs a few seconds apart, so slow
    // drifts in the machine's load cancel out.
    speedup_w2_vs_w0: Math.round(median(rates[2]!.map((r, k) => r / rates[0]![k]!)) * 100) / 100,
  };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
