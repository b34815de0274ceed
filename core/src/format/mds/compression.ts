/**
 * Shard file compression as Mosaic streaming names it (`streaming.base.compression`): a family,
 * optionally with a level (`zstd`, `zstd:7`, `gz`, `gz:1`, `br:5`). We read and write the families
 * Node's zlib has (zstd, gzip, brotli) with Mosaic's default levels; `bz2` and `snappy` are valid
 * Mosaic names that we recognize but cannot (de)compress, and say so.
 */
import zlib from 'node:zlib';
import { ArgumentError, FormatError } from '../../errors.ts';

interface Family {
  /** Filename extension of compressed shards (`shard.00000.mds.<extension>`). */
  readonly extension: string;
  readonly levels: readonly number[];
  /** The level when the name has none. */
  readonly defaultLevel: number | undefined;
  readonly supported: boolean;
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

const FAMILIES: Readonly<Record<string, Family>> = {
  br: { extension: 'br', levels: range(0, 11), defaultLevel: 11, supported: true },
  bz2: { extension: 'bz2', levels: range(1, 9), defaultLevel: 9, supported: false },
  gz: { extension: 'gz', levels: range(0, 9), defaultLevel: 9, supported: true },
  snappy: { extension: 'snappy', levels: [], defaultLevel: undefined, supported: false },
  zstd: { extension: 'zstd', levels: range(1, 22), defaultLevel: 3, supported: true },
};

/** A parsed compression name. */
export interface Compression {
  /** The name as written in the index, e.g. `zstd:7`. */
  readonly name: string;
  /** The family: `br`, `bz2`, `gz`, `snappy` or `zstd`. */
  readonly family: string;
  /** Filename extension of compressed files. */
  readonly extension: string;
  /** The level used to compress (the family's default when the name has none). */
  readonly level: number | undefined;
  /** Whether Shardline can compress and decompress it (false for bz2 and snappy). */
  readonly supported: boolean;
}

/** Parses a compression name Mosaic accepts, or returns undefined. */
export function parseCompression(name: unknown): Compression | undefined {
  if (typeof name !== 'string') return undefined;
  const colon = name.indexOf(':');
  const familyName = colon === -1 ? name : name.slice(0, colon);
  if (!Object.hasOwn(FAMILIES, familyName)) return undefined;
  const family = FAMILIES[familyName]!;
  let level = family.defaultLevel;
  if (colon !== -1) {
    const text = name.slice(colon + 1);
    if (!/^\d{1,2}$/.test(text) || !family.levels.includes(Number(text))) return undefined;
    level = Number(text);
  }
  return { name, family: familyName, extension: family.extension, level, supported: family.supported };
}

/** Every compression name Mosaic accepts (each family alone and with each of its levels). */
export const MDS_COMPRESSIONS: readonly string[] = Object.freeze(
  Object.entries(FAMILIES).flatMap(([name, f]) => [name, ...f.levels.map((l) => `${name}:${l}`)]),
);

/**
 * Compresses a shard file the way Mosaic's writer does for `compression.name`.
 * @throws ArgumentError for bz2 and snappy, which Node cannot write.
 */
export function compress(compression: Compression, data: Uint8Array): Uint8Array {
  switch (compression.family) {
    case 'zstd':
      return zlib.zstdCompressSync(data, {
        params: { [zlib.constants.ZSTD_c_compressionLevel]: compression.level! },
        // The frame then records the content size, which some decoders need.
        pledgedSrcSize: data.length,
      });
    case 'gz':
      return zlib.gzipSync(data, { level: compression.level! });
    case 'br':
      return zlib.brotliCompressSync(data, {
        params: { [zlib.constants.BROTLI_PARAM_QUALITY]: compression.level!, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: data.length },
      });
    default:
      throw new ArgumentError('compression', `${JSON.stringify(compression.name)} is a Mosaic compression that Shardline cannot write; use zstd, gz or br`);
  }
}

/**
 * Decompresses a shard file whose uncompressed size the index gives, refusing to produce more
 * (a corrupt or hostile file cannot inflate past it).
 * @param where names the file in errors, e.g. `shard 3 (shard.00003.mds.zstd)`.
 * @throws FormatError when the data is corrupt, inflates to a different size, or uses bz2/snappy.
 */
export function decompress(compression: Compression, data: Uint8Array, expectedBytes: number, where: string): Uint8Array {
  if (!compression.supported) {
    throw new FormatError(`${where}: compression ${JSON.stringify(compression.name)} is not supported by Shardline (only zstd, gz and br)`);
  }
  // One byte of headroom tells "exactly expectedBytes" from "more than that".
  const options = { maxOutputLength: Math.max(1, expectedBytes + 1) };
  let out: Uint8Array;
  try {
    if (compression.family === 'zstd') out = zlib.zstdDecompressSync(data, options);
    else if (compression.family === 'gz') out = zlib.gunzipSync(data, options);
    else out = zlib.brotliDecompressSync(data, options);
  } catch (cause) {
    const code = (cause as { code?: string }).code;
    if (code === 'ERR_BUFFER_TOO_LARGE') {
      throw new FormatError(`${where}: decompresses to more than the ${expectedBytes} bytes the index gives`, { cause });
    }
    throw new FormatError(`${where}: corrupt ${compression.family} data (${(cause as Error).message})`, { cause });
  }
  if (out.length !== expectedBytes) {
    throw new FormatError(`${where}: decompresses to ${out.length} bytes, but the index gives ${expectedBytes}`);
  }
  return out;
}
