/**
 * WebDataset's naming rules: how a tar member's name becomes a sample key and a suffix, which
 * members are metadata, and which names are safe. The rules are those of the reference reader
 * (webdataset/webdataset, `tariterators.py`), so a shard groups into the same samples here and in
 * Python:
 *
 * - `base_plus_ext`: the key is the name up to the first '.' of its basename, the directory kept;
 *   the suffix is everything after that dot (`a/b/000123.jpg` → `a/b/000123` + `jpg`,
 *   `x.seg.png` → `x` + `seg.png`). A name without a dot in its basename has no key and is
 *   skipped. We use the reference's regular expression as it is, quirks included (`a/.x` gives
 *   the key `a/` and the suffix `x`).
 * - Suffixes are lowercased (`lcase=True`, the default of `group_by_keys`).
 * - Metadata members are skipped: a name without '/' that starts and ends with `__`, or any name
 *   matching `__[^/]*__($|/)` at its start (`__meta__`, `__index__/shard.json`).
 *
 * On top of those, names must be safe: no `..` segment, not absolute, no backslash, no NUL, valid
 * UTF-8 and at most {@link MAX_NAME_BYTES} bytes. A tar breaking one of these is refused rather
 * than read, since a name like `../x.jpg` means the shard was built by mistake or to attack an
 * extractor.
 */
import { ArgumentError, FormatError } from '../../errors.ts';

/** The longest member name accepted, in UTF-8 bytes (Linux's PATH_MAX). */
export const MAX_NAME_BYTES = 4096;

/**
 * Suffixes a sample cannot have: the reference reader sets `__key__` and `__url__` on every
 * sample before adding members, so a member `x.__key__` is a duplicate there.
 */
export const RESERVED_SUFFIXES: ReadonlySet<string> = new Set(['__key__', '__url__']);

/** A member name split into its sample key and (lowercased) suffix. */
export interface MemberName {
  readonly key: string;
  readonly suffix: string;
}

// The reference's `base_plus_ext` pattern. JavaScript and Python agree on it: '.' excludes only
// '\n' in both, and the greedy last group reaches the true end of the string in both.
const BASE_PLUS_EXT = /^((?:.*\/|)[^.]+)[.]([^/]*)$/;
// The reference's `skip_meta` pattern, used with re.match (anchored at the start). Python's `$`
// also matches before a final newline, hence `\n?$`.
const SKIP_META = /^__[^/]*__(?:\n?$|\/)/;
// With the u flag a surrogate class matches only unpaired halves.
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * Splits a member name as WebDataset's `base_plus_ext` does, with the suffix lowercased, or
 * returns undefined for a name that belongs to no sample (no '.' in its basename).
 * @example
 * splitMemberName('a/b/000123.seg.PNG'); // { key: 'a/b/000123', suffix: 'seg.png' }
 * splitMemberName('README');             // undefined
 */
export function splitMemberName(name: string): MemberName | undefined {
  const match = BASE_PLUS_EXT.exec(name);
  if (match === null) return undefined;
  return { key: match[1]!, suffix: match[2]!.toLowerCase() };
}

/** Whether WebDataset skips this member as shard metadata (`__meta__`, `__x__/y.json`). */
export function isMetadataName(name: string): boolean {
  if (!name.includes('/') && name.startsWith('__') && name.endsWith('__')) return true;
  return SKIP_META.test(name);
}

/** Why a member name read from a tar is unsafe, or undefined when it is fine. */
export function unsafeNameReason(name: string): string | undefined {
  if (name === '') return 'it is empty';
  if (name.includes('\0')) return 'it contains a NUL character';
  if (name.includes('\\')) return 'it contains a backslash';
  if (name.startsWith('/')) return "it is absolute (starts with '/')";
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > MAX_NAME_BYTES) return `it is ${bytes} bytes long, over the limit of ${MAX_NAME_BYTES}`;
  if (name.split('/').includes('..')) return "it has a '..' segment";
  return undefined;
}

/**
 * Checks a member name read from a tar and returns it.
 * @throws FormatError naming the shard, the name and the reason.
 */
export function checkMemberName(shard: string, name: string, at: number): string {
  const reason = unsafeNameReason(name);
  if (reason !== undefined) {
    throw new FormatError(`${shard}: member ${JSON.stringify(name)} (header at offset ${at}) is refused: ${reason}`);
  }
  return name;
}

/**
 * The member name the writer gives `suffix` of the sample `key`, checked so that reading the tar
 * back gives exactly this key and suffix: the key is a relative path whose basename has no '.',
 * without empty, `.` or `..` segments; the suffix is non-empty, lowercase, has no '/' and does not
 * start with '_' (WebDataset writers skip such fields).
 * @throws ArgumentError naming the sample field.
 */
export function memberNameFor(key: string, suffix: string): string {
  if (typeof key !== 'string') throw new ArgumentError('__key__', `must be a string, got ${typeof key}`);
  const keyReason = unsafeKeyReason(key);
  if (keyReason !== undefined) throw new ArgumentError('__key__', `${JSON.stringify(key)} is refused: ${keyReason}`);
  const field = `sample ${JSON.stringify(key)} field ${JSON.stringify(suffix)}`;
  if (suffix === '') throw new ArgumentError(field, 'an empty suffix cannot be written');
  if (suffix.includes('/')) throw new ArgumentError(field, "a suffix cannot contain '/'");
  if (suffix.startsWith('_')) throw new ArgumentError(field, "fields starting with '_' are metadata, never written");
  if (hasControlCharacter(suffix) || LONE_SURROGATE.test(suffix)) {
    throw new ArgumentError(field, 'a suffix cannot contain control characters or lone surrogates');
  }
  if (suffix !== suffix.toLowerCase()) {
    throw new ArgumentError(field, `readers lowercase suffixes, so write ${JSON.stringify(suffix.toLowerCase())} instead`);
  }
  const name = `${key}.${suffix}`;
  const nameReason = unsafeNameReason(name);
  if (nameReason !== undefined) throw new ArgumentError(field, `member name ${JSON.stringify(name)} is refused: ${nameReason}`);
  if (isMetadataName(name)) throw new ArgumentError(field, `readers would skip ${JSON.stringify(name)} as metadata`);
  const split = splitMemberName(name);
  // Unreachable for names that passed the checks above; kept as the definition of "round-trips".
  if (split === undefined || split.key !== key || split.suffix !== suffix) {
    throw new ArgumentError(field, `${JSON.stringify(name)} would not read back as this key and suffix`);
  }
  return name;
}

/** Whether `text` has a C0 control character (NUL included) or DEL. */
export function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

/** Why `key` cannot be written as a sample key, or undefined when it can. */
export function unsafeKeyReason(key: string): string | undefined {
  if (key === '') return 'it is empty';
  if (hasControlCharacter(key)) return 'it contains a control character';
  if (LONE_SURROGATE.test(key)) return 'it contains a lone UTF-16 surrogate, which UTF-8 cannot encode';
  if (key.includes('\\')) return 'it contains a backslash';
  if (key.startsWith('/')) return "it is absolute (starts with '/')";
  const segments = key.split('/');
  for (const segment of segments) {
    if (segment === '') return "it has an empty segment ('//' or a trailing '/')";
    if (segment === '.' || segment === '..') return `it has a '${segment}' segment`;
  }
  if (segments.at(-1)!.includes('.')) return "its basename contains '.', which readers take as the start of the suffix";
  return undefined;
}
