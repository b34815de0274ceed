import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ArgumentError } from '../../errors.ts';
import { MDS_HASH_ALGORITHMS, hashBytes, isHashAlgorithm } from './hashing.ts';

test('hashes are Mosaic\'s hexdigest() for every algorithm it names', async () => {
  const abc = new TextEncoder().encode('abc');
  // Published test vectors for "abc".
  const known: Record<string, string> = {
    md5: '900150983cd24fb0d6963f7d28e17f72',
    sha1: 'a9993e364706816aba3e25717850c26c9cd0d89d',
    sha256: 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    sha3_256: '3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532',
    blake2s: '508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982',
    xxh32: '32d153ff',
    xxh64: '44bc2cf5ad770999',
    xxh3_64: '78af5f94892f3950',
    xxh128: '06b05ab6733a618578af5f94892f3950',
    xxh3_128: '06b05ab6733a618578af5f94892f3950',
  };
  for (const [algorithm, digest] of Object.entries(known)) assert.equal(await hashBytes(algorithm as never, abc), digest, algorithm);
  const lengths: Record<string, number> = { sha224: 56, sha384: 96, sha512: 128, sha3_224: 56, sha3_384: 96, sha3_512: 128, blake2b: 128 };
  for (const [algorithm, length] of Object.entries(lengths)) assert.match(await hashBytes(algorithm as never, abc), new RegExp(`^[0-9a-f]{${length}}$`), algorithm);
  assert.equal(MDS_HASH_ALGORITHMS.length, 17);
  assert.ok(MDS_HASH_ALGORITHMS.every(isHashAlgorithm));
  assert.ok(!isHashAlgorithm('shake_128') && !isHashAlgorithm('toString') && !isHashAlgorithm(undefined));
  await assert.rejects(hashBytes('crc32' as never, abc), (e: unknown) => e instanceof ArgumentError && /unknown hash algorithm "crc32"/.test(e.message));
});
