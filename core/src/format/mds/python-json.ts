/**
 * JSON as Python's `json` module writes and reads it, so MDS files we write are byte for byte what
 * Mosaic's writer makes: `json.dumps` puts a space after ',' and ':', escapes every non-ASCII
 * character (`ensure_ascii`), writes floats with `repr` (`1.0`, `1e-05`, `1e+16`) and `NaN` /
 * `Infinity` for non-finite numbers, and `json.loads` accepts those back. The index, the shard
 * header and `json` / `str_float` columns go through here.
 */
import { ArgumentError, FormatError } from '../../errors.ts';

/** A value JSON can hold. Numbers that are safe integers are written as Python ints. */
export type JsonValue = null | boolean | number | string | readonly JsonValue[] | { readonly [key: string]: JsonValue };

/** What {@link pythonJsonDumps} accepts: JSON values, plus bigint for Python's unbounded ints. */
export type PythonJsonInput =
  | null
  | boolean
  | number
  | bigint
  | string
  | readonly PythonJsonInput[]
  | { readonly [key: string]: PythonJsonInput };

/** Deepest nesting either direction accepts (Python's own limit is its recursion limit, ~1000). */
export const MAX_JSON_DEPTH = 1000;

// Python's json.encoder.ESCAPE_ASCII: everything outside ' '..'~' is escaped.
const ESCAPES: Readonly<Record<string, string>> = { '"': '\\"', '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t', '\b': '\\b', '\f': '\\f' };
// eslint-disable-next-line no-control-regex
const NEEDS_ESCAPE = /["\\\u0000-\u001f\u007f-\uffff]/g;

/** A string as Python's `json.dumps` writes it (ensure_ascii: UTF-16 units as `\uXXXX`, lowercase). */
export function pythonJsonString(value: string): string {
  return `"${value.replace(NEEDS_ESCAPE, (c) => ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)}"`;
}

/**
 * Python's `repr(float)`: the shortest digits that round-trip (the same digits JavaScript picks),
 * in fixed notation when the decimal exponent is in [-4, 16) (always with a fractional part),
 * otherwise in scientific notation with a signed exponent of at least two digits.
 * Non-finite values give `nan`, `inf` and `-inf` (what `str(float)` prints).
 */
export function pythonFloatRepr(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (x === Infinity) return 'inf';
  if (x === -Infinity) return '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const sign = x < 0 ? '-' : '';
  const [mantissa, exponent] = Math.abs(x).toExponential().split('e') as [string, string];
  const digits = mantissa.replace('.', '');
  const exp = Number(exponent);
  if (exp >= -4 && exp < 16) {
    if (exp < 0) return `${sign}0.${'0'.repeat(-exp - 1)}${digits}`;
    const whole = digits.slice(0, exp + 1).padEnd(exp + 1, '0');
    const fraction = digits.slice(exp + 1);
    return `${sign}${whole}.${fraction === '' ? '0' : fraction}`;
  }
  const body = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
  return `${sign}${body}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
}

// Python's json float: repr, except NaN / Infinity / -Infinity (allow_nan=True).
function pythonJsonFloat(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return 'Infinity';
  if (x === -Infinity) return '-Infinity';
  return pythonFloatRepr(x);
}

/**
 * Python's order of str (by code point). JavaScript's default sort compares UTF-16 units, which
 * differs for characters above U+FFFF against U+E000..U+FFFF.
 */
export function compareCodePoints(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) {
    const d = x[i]!.codePointAt(0)! - y[i]!.codePointAt(0)!;
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

/**
 * `json.dumps(value, sort_keys=sortKeys)` of CPython, byte for byte: safe integers and bigints as
 * ints, other numbers as floats (`-0` as `-0.0`). Keys keep the object's order unless `sortKeys`
 * (note that JavaScript itself puts integer-like keys first).
 * @throws ArgumentError for values JSON cannot hold (undefined, functions, symbols, cycles, nesting
 *   deeper than {@link MAX_JSON_DEPTH}), naming the path to the value.
 * @example
 * pythonJsonDumps({ b: [1, 2.5, 'é'], a: null }, { sortKeys: true }); // '{"a": null, "b": [1, 2.5, "\\u00e9"]}'
 */
export function pythonJsonDumps(value: PythonJsonInput, { sortKeys = false, name = 'value' }: { sortKeys?: boolean; name?: string } = {}): string {
  const active = new Set<object>();
  const dump = (v: unknown, path: string, depth: number): string => {
    if (v === null) return 'null';
    switch (typeof v) {
      case 'boolean':
        return v ? 'true' : 'false';
      case 'number':
        return Number.isSafeInteger(v) && !Object.is(v, -0) ? String(v) : pythonJsonFloat(v);
      case 'bigint':
        return v.toString();
      case 'string':
        return pythonJsonString(v);
      case 'object': {
        if (depth >= MAX_JSON_DEPTH) throw new ArgumentError(path, `nests deeper than ${MAX_JSON_DEPTH} levels`);
        if (active.has(v)) throw new ArgumentError(path, 'is a cycle (the value contains itself)');
        if (ArrayBuffer.isView(v)) throw new ArgumentError(path, 'is a typed array, which JSON cannot hold (use an array of numbers)');
        active.add(v);
        try {
          if (Array.isArray(v)) return `[${v.map((item, i) => dump(item, `${path}[${i}]`, depth + 1)).join(', ')}]`;
          const keys = Object.keys(v);
          if (sortKeys) keys.sort(compareCodePoints);
          const record = v as Record<string, unknown>;
          return `{${keys.map((k) => `${pythonJsonString(k)}: ${dump(record[k], `${path}.${k}`, depth + 1)}`).join(', ')}}`;
        } finally {
          active.delete(v);
        }
      }
      default:
        throw new ArgumentError(path, `is ${v === undefined ? 'undefined' : `a ${typeof v}`}, which JSON cannot hold`);
    }
  };
  return dump(value, name, 0);
}

/**
 * `json.loads` of CPython: standard JSON plus the bare `NaN`, `Infinity` and `-Infinity` that
 * Python writes for non-finite floats. Integers beyond 2^53 lose precision (they become numbers).
 * @throws FormatError naming `what` and the position of the first error.
 */
export function pythonJsonLoads(text: string, what = 'JSON'): JsonValue {
  try {
    return JSON.parse(text) as JsonValue;
  } catch (error) {
    // Only text with Python's non-standard constants is worth a second, slower parse.
    if (!/NaN|Infinity/.test(text)) throw new FormatError(`${what}: invalid JSON (${(error as Error).message})`, { cause: error });
  }
  return new ExtendedJsonParser(text, what).parse();
}

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const STRING = /"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y; // eslint-disable-line no-control-regex
const WHITESPACE = /[ \t\n\r]*/y;

/** A small recursive-descent parser for the JSON superset Python reads. */
class ExtendedJsonParser {
  readonly #text: string;
  readonly #what: string;
  #at = 0;

  constructor(text: string, what: string) {
    this.#text = text;
    this.#what = what;
  }

  parse(): JsonValue {
    const value = this.#value(0);
    this.#skip();
    if (this.#at !== this.#text.length) this.#fail('unexpected text after the value');
    return value;
  }

  #fail(message: string): never {
    throw new FormatError(`${this.#what}: invalid JSON at position ${this.#at}: ${message}`);
  }

  #skip(): void {
    WHITESPACE.lastIndex = this.#at;
    WHITESPACE.exec(this.#text);
    this.#at = WHITESPACE.lastIndex;
  }

  #match(re: RegExp): string | undefined {
    re.lastIndex = this.#at;
    const m = re.exec(this.#text);
    if (m === null) return undefined;
    this.#at = re.lastIndex;
    return m[0];
  }

  #literal(word: string): boolean {
    if (!this.#text.startsWith(word, this.#at)) return false;
    this.#at += word.length;
    return true;
  }

  #value(depth: number): JsonValue {
    if (depth > MAX_JSON_DEPTH) this.#fail(`nesting deeper than ${MAX_JSON_DEPTH} levels`);
    this.#skip();
    const c = this.#text[this.#at];
    if (c === '{') return this.#object(depth);
    if (c === '[') return this.#array(depth);
    if (c === '"') {
      const s = this.#match(STRING);
      if (s === undefined) this.#fail('bad string');
      return JSON.parse(s) as string;
    }
    if (this.#literal('null')) return null;
    if (this.#literal('true')) return true;
    if (this.#literal('false')) return false;
    if (this.#literal('NaN')) return NaN;
    if (this.#literal('Infinity')) return Infinity;
    if (this.#literal('-Infinity')) return -Infinity;
    const n = this.#match(NUMBER);
    if (n === undefined) this.#fail('expected a value');
    return Number(n);
  }

  #array(depth: number): JsonValue[] {
    this.#at++;
    const out: JsonValue[] = [];
    this.#skip();
    if (this.#literal(']')) return out;
    for (;;) {
      out.push(this.#value(depth + 1));
      this.#skip();
      if (this.#literal(']')) return out;
      if (!this.#literal(',')) this.#fail("expected ',' or ']'");
    }
  }

  #object(depth: number): Record<string, JsonValue> {
    this.#at++;
    const out: Record<string, JsonValue> = {};
    this.#skip();
    if (this.#literal('}')) return out;
    for (;;) {
      this.#skip();
      const key = this.#match(STRING);
      if (key === undefined) this.#fail('expected a string key');
      this.#skip();
      if (!this.#literal(':')) this.#fail("expected ':'");
      // defineProperty: a "__proto__" key is data, as JSON.parse makes it.
      Object.defineProperty(out, JSON.parse(key) as string, { value: this.#value(depth + 1), enumerable: true, writable: true, configurable: true });
      this.#skip();
      if (this.#literal('}')) return out;
      if (!this.#literal(',')) this.#fail("expected ',' or '}'");
    }
  }
}
