/**
 * Object keys: the one check every store runs before it touches a key. Keys come from index files
 * (untrusted input) and name objects relative to the dataset prefix with '/' separators, so
 * anything that could leave the prefix — on a file system, behind a proxy that decodes or
 * normalizes URLs, or after Unicode normalization — is refused with an UnsafeKeyError that names
 * the key and the reason.
 */
import path from 'node:path';
import { ArgumentError } from '@shardline/core';
import { UnsafeKeyError } from '../errors.ts';

/** The longest key accepted, in UTF-8 bytes (S3's limit for a whole key). */
export const MAX_KEY_BYTES = 1024;

// C0 and C1 controls (NUL included), DEL, and invisible format characters (bidi overrides,
// zero-width joiners) that make a key display as something it is not.
const CONTROL_OR_FORMAT = /[\p{Cc}\p{Cf}]/u;
const PERCENT_ENCODED = /%[0-9a-fA-F]{2}/;
// With the u flag a surrogate class matches only unpaired halves, which UTF-8 cannot encode.
const LONE_SURROGATE = /\p{Cs}/u;

/** Why `key` is unsafe, or undefined when it is a safe relative key. */
function unsafeReason(key: string): string | undefined {
  if (key === '') return 'it is empty';
  if (LONE_SURROGATE.test(key)) return 'it contains a lone UTF-16 surrogate';
  const bytes = Buffer.byteLength(key, 'utf8');
  if (bytes > MAX_KEY_BYTES) return `it is ${bytes} bytes long, over the limit of ${MAX_KEY_BYTES}`;
  const control = CONTROL_OR_FORMAT.exec(key);
  if (control !== null) {
    const code = control[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0');
    return `it contains the control or format character U+${code}`;
  }
  if (key.includes('\\')) return 'it contains a backslash';
  if (key.startsWith('/')) return "it is absolute (starts with '/')";
  const encoded = PERCENT_ENCODED.exec(key);
  if (encoded !== null) return `it contains the percent-encoded sequence ${encoded[0]}`;
  // Full-width dots and slashes, ligatures, one-dot leaders and the like become '.', '/' or other
  // characters under NFKC, which some file systems and gateways apply: only a key NFKC leaves
  // unchanged means the same thing everywhere.
  if (key.normalize('NFKC') !== key) return 'Unicode NFKC normalization changes it (look-alike or compatibility characters)';
  for (const segment of key.split('/')) {
    if (segment === '') return "it has an empty segment ('//' or a trailing '/')";
    if (segment === '.' || segment === '..') return `it has a '${segment}' segment`;
  }
  return undefined;
}

/**
 * Checks that `key` is a safe relative object key and returns it unchanged. Every store calls it
 * before using a key; it is pure and cheap (no I/O).
 *
 * Refused: non-strings, the empty key, keys over {@link MAX_KEY_BYTES} UTF-8 bytes, lone
 * surrogates, control and invisible format characters (NUL included), backslashes, absolute keys,
 * any percent-encoded sequence (`%2e`, `%2F`, …), keys that Unicode NFKC normalization changes
 * (full-width `．．／`, ligatures: also decomposed accents, which NFKC composes), empty segments
 * (`a//b`, a trailing '/'), and `.` or `..` segments.
 * @throws UnsafeKeyError naming the key and the reason.
 * @example
 * resolveKey('shards/shard-00001.mds'); // 'shards/shard-00001.mds'
 * resolveKey('../etc/passwd');          // throws UnsafeKeyError: it has a '..' segment
 */
export function resolveKey(key: unknown): string {
  if (typeof key !== 'string') throw new UnsafeKeyError(String(key), `it must be a string, got ${typeof key}`);
  const reason = unsafeReason(key);
  if (reason !== undefined) throw new UnsafeKeyError(key, reason);
  return key;
}

/**
 * The file of `key` under the directory `root` (an absolute, resolved path): always inside it.
 * Symbolic links are not followed here; {@link LocalDirectorySource} checks them.
 * @throws UnsafeKeyError for an unsafe key.
 */
export function resolveLocalPath(root: string, key: unknown): string {
  const safe = resolveKey(key);
  const file = path.resolve(root, safe);
  // Unreachable for a key resolveKey accepts; kept so a future change to the rules cannot
  // silently open an escape.
  if (!file.startsWith(root.endsWith(path.sep) ? root : root + path.sep)) {
    throw new UnsafeKeyError(safe, `it resolves outside ${root}`);
  }
  return file;
}

/**
 * Normalizes an S3 prefix: '' (the bucket's root) or segments that would each pass
 * {@link resolveKey}, with one trailing '/' added when missing.
 * @throws ArgumentError naming `name` when the prefix is unsafe.
 * @example
 * normalizePrefix('datasets/train'); // 'datasets/train/'
 * normalizePrefix('');               // ''
 */
export function normalizePrefix(prefix: unknown, name = 'prefix'): string {
  if (typeof prefix !== 'string') throw new ArgumentError(name, `must be a string, got ${typeof prefix}`);
  if (prefix === '') return '';
  const bare = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  const reason = unsafeReason(bare);
  if (reason !== undefined) throw new ArgumentError(name, `${JSON.stringify(prefix)} is refused: ${reason}`);
  return `${bare}/`;
}

/**
 * The S3 object key of `key` under a prefix normalized by {@link normalizePrefix}.
 * @throws UnsafeKeyError for an unsafe key, or when prefix and key together exceed S3's
 * {@link MAX_KEY_BYTES}.
 */
export function resolveS3Key(prefix: string, key: unknown): string {
  const safe = resolveKey(key);
  const full = prefix + safe;
  const bytes = Buffer.byteLength(full, 'utf8');
  if (bytes > MAX_KEY_BYTES) {
    throw new UnsafeKeyError(safe, `with the prefix ${JSON.stringify(prefix)} it is ${bytes} bytes long, over S3's limit of ${MAX_KEY_BYTES}`);
  }
  return full;
}
