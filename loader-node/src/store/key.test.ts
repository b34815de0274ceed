/**
 * resolveKey and the joins built on it: hostile keys from index files are refused with the
 * reason, and (property) whatever is accepted stays under the root or prefix it is joined to.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { ArgumentError, ErrorCode } from '@shardline/core';
import { UnsafeKeyError } from '../errors.ts';
import { MAX_KEY_BYTES, normalizePrefix, resolveKey, resolveLocalPath, resolveS3Key } from './key.ts';

test('ordinary relative keys are accepted unchanged', () => {
  for (const key of ['index.json', 'shards/shard.00000.mds', 'a/b/c.tar', 'train-00001-of-00100.tar', 'é/日本語.bin', '..a', 'a..', '.hidden', 'a/.b', '%', '100%', '%zz', 'a b', 'ñ']) {
    assert.equal(resolveKey(key), key);
  }
});

test('hostile keys are refused with an UnsafeKeyError naming the key and the reason', () => {
  const cases: Array<[unknown, RegExp]> = [
    ['', /empty/],
    ['..', /'\.\.' segment/],
    ['.', /'\.' segment/],
    ['../etc/passwd', /'\.\.' segment/],
    ['a/../../b', /'\.\.' segment/],
    ['a/./b', /'\.' segment/],
    ['a/..', /'\.\.' segment/],
    ['/etc/passwd', /absolute/],
    ['a\\..\\b', /backslash/],
    ['..\\x', /backslash/],
    ['a\0b', /U\+0000/],
    ['a\nb', /U\+000A/],
    ['a\x7fb', /U\+007F/],
    ['a\u0085b', /U\+0085/],
    ['a\u202eb', /U\+202E/],
    ['a\u200bb', /U\+200B/],
    ['%2e%2e/x', /%2e/],
    ['a%2Fb', /%2F/],
    ['%2E%2E%2F%2E%2E', /%2E/],
    ['x%00', /%00/],
    ['a//b', /empty segment/],
    ['a/', /empty segment/],
    ['\uff0e\uff0e/x', /NFKC/], // full-width dots
    ['a\uff0fb', /NFKC/], // full-width solidus
    ['\u2024\u2024/x', /NFKC/], // one-dot leaders
    ['\ufe52\ufe52', /NFKC/], // small full stop
    ['ﬁle', /NFKC/], // ligature
    ['e\u0301', /NFKC/], // decomposed é: NFKC composes it
    ['a\ud800b', /surrogate/],
    ['x'.repeat(MAX_KEY_BYTES + 1), /1025 bytes/],
    ['é'.repeat(513), /1026 bytes/],
    [42, /must be a string/],
    [undefined, /must be a string/],
  ];
  for (const [key, reason] of cases) {
    assert.throws(
      () => resolveKey(key),
      (error: unknown) => {
        assert.ok(error instanceof UnsafeKeyError, `${JSON.stringify(key)}: ${String(error)}`);
        assert.equal(error.code, ErrorCode.UnsafeKey);
        assert.match(error.message, reason, JSON.stringify(key));
        assert.ok(error.message.includes(JSON.stringify(String(key)).slice(1, 20)), error.message);
        return true;
      },
    );
  }
  assert.equal(resolveKey('x'.repeat(MAX_KEY_BYTES)).length, MAX_KEY_BYTES);
});

// Strings built from the characters that matter for escapes, plus arbitrary Unicode.
const hostileChar = fc.oneof(
  fc.constantFrom('.', '/', '\\', '%', '2', 'e', 'E', 'f', 'F', '\0', '\uff0e', '\uff0f', '\u2024', '\u2215', '\u2044', '~', ':', ' '),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 }),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
);
const hostileKey = fc.oneof(
  fc.array(hostileChar, { maxLength: 24 }).map((chars) => chars.join('')),
  fc.array(fc.constantFrom('..', '.', 'a', '', '%2e', '%2f', '\uff0e\uff0e', 'b.c'), { maxLength: 6 }).map((segments) => segments.join('/')),
);

function accepted(key: string): boolean {
  try {
    resolveKey(key);
    return true;
  } catch (error) {
    assert.ok(error instanceof UnsafeKeyError, String(error));
    return false;
  }
}

test('property: an accepted key joined to a local root stays inside it', () => {
  const root = path.resolve('/srv/data/train');
  let checked = 0;
  fc.assert(
    fc.property(hostileKey, (key) => {
      if (!accepted(key)) return;
      checked++;
      const file = resolveLocalPath(root, key);
      assert.ok(file.startsWith(root + path.sep), `${JSON.stringify(key)} → ${file}`);
      assert.equal(path.relative(root, file).split(path.sep).join('/'), key);
      // Normalizing the key changes nothing: no '.' or '..' hides in it.
      assert.equal(path.posix.normalize(key), key);
    }),
    { numRuns: 3000 },
  );
  // The generator must reach the accepting side often enough for the property to mean something.
  assert.ok(checked > 300, `only ${checked} keys were accepted`);
});

test('property: an accepted key joined to an S3 prefix stays under it, and no decoding or normalization changes it', () => {
  fc.assert(
    fc.property(hostileKey, fc.constantFrom('', 'datasets/train/', 'a/'), (key, prefix) => {
      if (!accepted(key)) return;
      const full = resolveS3Key(prefix, key);
      assert.ok(full.startsWith(prefix));
      assert.equal(full.slice(prefix.length), key);
      assert.equal(path.posix.normalize(full), full);
      assert.equal(key.normalize('NFKC'), key);
      assert.equal(decodeURIComponent(encodeURIComponent(key)), key);
      // A gateway that percent-decodes the path once more sees the same key.
      let decoded: string;
      try {
        decoded = decodeURIComponent(key);
      } catch {
        decoded = key;
      }
      assert.equal(decoded, key);
    }),
    { numRuns: 3000 },
  );
});

test('property: a key with a ".." or "." segment, a backslash or a leading "/" is always refused', () => {
  fc.assert(
    fc.property(
      fc.array(fc.stringMatching(/^[a-z0-9._-]{1,8}$/), { maxLength: 4 }),
      fc.constantFrom('..', '.', 'a\\b', '/a'),
      fc.array(fc.stringMatching(/^[a-z0-9._-]{1,8}$/), { maxLength: 4 }),
      (before, bad, after) => {
        const key = [...before, bad, ...after].join('/');
        assert.throws(() => resolveKey(key), UnsafeKeyError, key);
      },
    ),
  );
});

test('resolveLocalPath joins under the root; resolveS3Key also enforces S3\'s 1024-byte limit with the prefix', () => {
  assert.equal(resolveLocalPath('/data', 'a/b'), path.join('/data', 'a', 'b'));
  assert.throws(() => resolveLocalPath('/data', '../x'), UnsafeKeyError);
  assert.equal(resolveS3Key('p/', 'a/b'), 'p/a/b');
  assert.throws(() => resolveS3Key('p/'.repeat(10), 'x'.repeat(1010)), /over S3's limit of 1024/);
});

test('normalizePrefix adds one trailing slash and refuses unsafe prefixes with an ArgumentError', () => {
  assert.equal(normalizePrefix(''), '');
  assert.equal(normalizePrefix('a'), 'a/');
  assert.equal(normalizePrefix('a/b/'), 'a/b/');
  for (const bad of ['/a', 'a//', '../a', 'a/../b', 'a\\b', '%2e%2e', '/', 'a//b/']) {
    assert.throws(() => normalizePrefix(bad), (e: unknown) => e instanceof ArgumentError && e.message.startsWith('prefix:'), bad);
  }
  assert.throws(() => normalizePrefix(7), ArgumentError);
});
