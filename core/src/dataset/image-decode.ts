/**
 * Image decoding shared by every reader that holds encoded images (ImageFolder files, MDS `jpeg`
 * and `png` columns): sharp turns JPEG/PNG/WebP/… bytes into a uint8 tensor [H, W, C].
 */
import sharp from 'sharp';
import type { Tensor } from '../tensor.ts';

/** How many channels decoded images get. */
export const ImageChannels = { gray: 1, rgb: 3, rgba: 4, keep: 'keep' } as const;
export type ImageChannels = (typeof ImageChannels)[keyof typeof ImageChannels];

/**
 * Decodes encoded image bytes into a uint8 tensor [height, width, channels], converted to
 * `channels` (default 3: RGB; 'keep' keeps the file's own). Truncated or corrupt bytes reject
 * with sharp's error; callers wrap it with what the image was.
 * @example
 * const tensor = await decodeImage(jpegBytes); // { dtype: 'uint8', shape: [h, w, 3], data }
 */
export async function decodeImage(bytes: Uint8Array, channels: ImageChannels = 3): Promise<Tensor> {
  let pipeline = sharp(bytes, { failOn: 'truncated' });
  if (channels === 1) pipeline = pipeline.removeAlpha().toColourspace('b-w');
  else if (channels === 3) pipeline = pipeline.removeAlpha().toColourspace('srgb');
  else if (channels === 4) pipeline = pipeline.ensureAlpha().toColourspace('srgb');
  const { data, info } = await pipeline.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  const pixels = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (pixels.length !== info.height * info.width * info.channels) {
    throw new Error(`decoded ${pixels.length} bytes for ${info.width}x${info.height}x${info.channels} pixels`);
  }
  return { dtype: 'uint8', shape: [info.height, info.width, info.channels], data: pixels };
}
