/**
 * The per-sample transform of the `loader` benchmark, loaded by module spec on every thread that
 * builds batches: a CIFAR-style augmentation of a uint8 image [H, W, 3] — a seeded random crop and
 * horizontal flip, `blurPasses` 3×3 box blurs, then normalization to a float32 tensor [3, C, C]
 * (channels first). Pure JavaScript arithmetic, a few tenths of a millisecond per sample: the
 * decode cost worker threads are for.
 */
import { hashSeed, type MDSSample, type Tensor } from '@shardline/core';
import type { SampleTransform } from '@shardline/loader-node';

export interface AugmentArgs {
  /** Side of the square crop. */
  crop: number;
  blurPasses: number;
}

const MEAN = [0.4914, 0.4822, 0.4465];
const STD = [0.247, 0.2435, 0.2616];

/** The factory runLoader calls with `args`. */
export function augment(args: AugmentArgs): SampleTransform {
  const c = args.crop;
  let a = new Float32Array(c * c);
  let b = new Float32Array(c * c);
  return (sample: MDSSample, at) => {
    const image = sample.image as Tensor;
    const [h, w] = image.shape as [number, number, number];
    const pixels = image.data as Uint8Array;
    const r = hashSeed(at.seed, at.epoch, at.sampleId);
    const top = r % (h - c + 1);
    const left = (r >>> 8) % (w - c + 1);
    const flip = (r >>> 16) & 1;
    const out = new Float32Array(3 * c * c);
    for (let ch = 0; ch < 3; ch++) {
      for (let y = 0; y < c; y++) {
        for (let x = 0; x < c; x++) {
          const sx = flip === 1 ? left + c - 1 - x : left + x;
          a[y * c + x] = pixels[((top + y) * w + sx) * 3 + ch]! / 255;
        }
      }
      for (let p = 0; p < args.blurPasses; p++) {
        for (let y = 0; y < c; y++) {
          for (let x = 0; x < c; x++) {
            let sum = 0;
            let n = 0;
            for (let dy = -1; dy <= 1; dy++) {
              const yy = y + dy;
              if (yy < 0 || yy >= c) continue;
              for (let dx = -1; dx <= 1; dx++) {
                const xx = x + dx;
                if (xx < 0 || xx >= c) continue;
                sum += a[yy * c + xx]!;
                n++;
              }
            }
            b[y * c + x] = sum / n;
          }
        }
        [a, b] = [b, a];
      }
      const plane = ch * c * c;
      for (let i = 0; i < c * c; i++) out[plane + i] = (a[i]! - MEAN[ch]!) / STD[ch]!;
    }
    return { image: { dtype: 'float32', shape: [3, c, c], data: out }, label: sample.label };
  };
}
