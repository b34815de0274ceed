/**
 * The hash algorithms Mosaic streaming names in an index (`streaming.base.hashing`): every
 * `hashlib` constructor (sha*, sha3_*, blake2*, md5) through node:crypto, and every `xxhash`
 * algorithm through hash-wasm. Digests are lowercase hex, as Python's `hexdigest()`.
 */
import { createHash } from 'node:crypto';
import { xxhash128, xxhash3, xxhash32, xxhash64 } from 'hash-wasm';
import { ArgumentError } from '../../errors.ts';

/** Mosaic's algorithm name → node:crypto's, for the hashlib family. */
const CRYPTO_NAMES = {
  md5: 'md5',
  sha1: 'sha1',
  sha224: 'sha224',
  sha256: 'sha256',
  sha384: 'sha384',
  sha512: 'sha512',
  sha3_224: 'sha3-224',
  sha3_256: 'sha3-256',
  sha3_384: 'sha3-384',
  sha3_512: 'sha3-512',
  // Python's defaults: blake2b with a 64-byte digest, blake2s with 32.
  blake2b: 'blake2b512',
  blake2s: 'blake2s256',
} as const;

const XXHASH = {
  xxh32: (data: Uint8Array) => xxhash32(data),
  xxh64: (data: Uint8Array) => xxhash64(data),
  xxh3_64: (data: Uint8Array) => xxhash3(data),
  xxh3_128: (data: Uint8Array) => xxhash128(data),
  xxh128: (data: Uint8Array) => xxhash128(data),
} as const;

/** A hash algorithm name as Mosaic writes it in `hashes`. */
export type MDSHashAlgorithm = keyof typeof CRYPTO_NAMES | keyof typeof XXHASH;

/** Every algorithm name an index may list, sorted. */
export const MDS_HASH_ALGORITHMS: readonly MDSHashAlgorithm[] = Object.freeze(
  [...Object.keys(CRYPTO_NAMES), ...Object.keys(XXHASH)].sort() as MDSHashAlgorithm[],
);

/** Whether `name` is an algorithm Mosaic can list in an index (and we can compute). */
export function isHashAlgorithm(name: unknown): name is MDSHashAlgorithm {
  return typeof name === 'string' && (Object.hasOwn(CRYPTO_NAMES, name) || Object.hasOwn(XXHASH, name));
}

/**
 * The lowercase hex digest of `data`, as Mosaic's `get_hash(algorithm, data)`.
 * @throws ArgumentError for an unknown algorithm.
 * @example await hashBytes('xxh64', new TextEncoder().encode('abc')); // '44bc2cf5ad770999'
 */
export async function hashBytes(algorithm: MDSHashAlgorithm, data: Uint8Array): Promise<string> {
  if (Object.hasOwn(CRYPTO_NAMES, algorithm)) {
    return createHash(CRYPTO_NAMES[algorithm as keyof typeof CRYPTO_NAMES]).update(data).digest('hex');
  }
  if (Object.hasOwn(XXHASH, algorithm)) return XXHASH[algorithm as keyof typeof XXHASH](data);
  throw new ArgumentError('algorithm', `unknown hash algorithm ${JSON.stringify(algorithm)}; known: ${MDS_HASH_ALGORITHMS.join(', ')}`);
}
