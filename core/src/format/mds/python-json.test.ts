import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ArgumentError, FormatError } from '../../errors.ts';
import { MAX_JSON_DEPTH, compareCodePoints, pythonFloatRepr, pythonJsonDumps, pythonJsonLoads } from './python-json.ts';

test('pythonFloatRepr writes what CPython repr() writes', () => {
  const cases: [number, string][] = [
    [0, '0.0'], [-0, '-0.0'], [1, '1.0'], [-2.5, '-2.5'], [0.1, '0.1'], [0.0001, '0.0001'], [0.00001, '1e-05'],
    [1.5e-7, '1.5e-07'], [1e15, '1000000000000000.0'], [1e16, '1e+16'], [1.2345e16, '1.2345e+16'], [123456789.125, '123456789.125'],
    [1e22, '1e+22'], [1e100, '1e+100'], [5e-324, '5e-324'], [1.7976931348623157e308, '1.7976931348623157e+308'],
    [0.30000000000000004, '0.30000000000000004'], [NaN, 'nan'], [Infinity, 'inf'], [-Infinity, '-inf'],
  ];
  for (const [x, want] of cases) assert.equal(pythonFloatRepr(x), want, String(x));
});

test('pythonFloatRepr round-trips every double through Number()', () => {
  fc.assert(
    fc.property(fc.double({ noNaN: true }), (x) => {
      const text = pythonFloatRepr(x).replace(/^(-?)inf$/, '$1Infinity');
      assert.ok(Object.is(Number(text), x), `${x} → ${text}`);
    }),
  );
});

test('pythonJsonDumps matches json.dumps: separators, ensure_ascii, ints and floats, sort_keys by code point', () => {
  assert.equal(pythonJsonDumps({ b: [1, 2.5, 'é'], a: null, c: true }), '{"b": [1, 2.5, "\\u00e9"], "a": null, "c": true}');
  assert.equal(pythonJsonDumps({ b: 1, a: 2 }, { sortKeys: true }), '{"a": 2, "b": 1}');
  assert.equal(pythonJsonDumps([-0, 1e16, 2 ** 53 - 1, 2 ** 53, 12345678901234567890n, NaN, Infinity, -Infinity]),
    '[-0.0, 1e+16, 9007199254740991, 9007199254740992.0, 12345678901234567890, NaN, Infinity, -Infinity]');
  assert.equal(pythonJsonDumps('\u0000\u001f"\\\n\r\t\b\f\u007f\u{1F600}\ud800'), '"\\u0000\\u001f\\"\\\\\\n\\r\\t\\b\\f\\u007f\\ud83d\\ude00\\ud800"');
  assert.equal(pythonJsonDumps({}), '{}');
  assert.equal(pythonJsonDumps([]), '[]');
  // U+FB01 sorts before U+1D538 by code point, after it by UTF-16 unit.
  assert.equal(pythonJsonDumps({ '\u{1D538}': 1, '\uFB01': 2 }, { sortKeys: true }), '{"\\ufb01": 2, "\\ud835\\udd38": 1}');
  assert.ok(compareCodePoints('\uFB01', '\u{1D538}') < 0);
  assert.ok(compareCodePoints('a', 'ab') < 0 && compareCodePoints('b', 'a') > 0 && compareCodePoints('x', 'x') === 0);
});

test('pythonJsonDumps refuses what JSON cannot hold, naming the path', () => {
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  const cases: [unknown, RegExp][] = [
    [{ a: [1, undefined] }, /^value\.a\[1\]: is undefined/],
    [{ f: () => 1 }, /^value\.f: is a function/],
    [{ s: Symbol('x') }, /^value\.s: is a symbol/],
    [cyclic, /^value\.self: is a cycle/],
    [{ t: new Uint8Array(2) }, /^value\.t: is a typed array/],
  ];
  for (const [value, pattern] of cases) {
    assert.throws(() => pythonJsonDumps(value as never), (e: unknown) => e instanceof ArgumentError && pattern.test(e.message));
  }
  let deep: unknown = 1;
  for (let i = 0; i <= MAX_JSON_DEPTH; i++) deep = [deep];
  assert.throws(() => pythonJsonDumps(deep as never), /nests deeper than 1000 levels/);
  // A repeated (not cyclic) object is fine.
  const shared = { x: 1 };
  assert.equal(pythonJsonDumps([shared, shared]), '[{"x": 1}, {"x": 1}]');
});

test('pythonJsonLoads reads standard JSON and Python\'s NaN / Infinity, and refuses the rest with a FormatError', () => {
  assert.deepEqual(pythonJsonLoads('{"a": [1, 2.5, "x"]}'), { a: [1, 2.5, 'x'] });
  const special = pythonJsonLoads('{"n": NaN, "list": [Infinity, -Infinity, -0.0, 1e400], "s": "NaN \\u00e9", "__proto__": {"x": true}}') as Record<string, unknown>;
  assert.ok(Number.isNaN(special.n));
  assert.deepEqual(special.list, [Infinity, -Infinity, -0, Infinity]);
  assert.equal(special.s, 'NaN é');
  assert.deepEqual(Object.getOwnPropertyDescriptor(special, '__proto__')?.value, { x: true });
  assert.equal(Object.getPrototypeOf(special), Object.prototype);
  for (const bad of ['', '{', '[1,]', '{"a" 1}', 'NaN NaN', '[nan]', '{"a": Infinityy}', '"\u0001"', '[NaN', '{NaN: 1}', "['NaN']"]) {
    assert.throws(() => pythonJsonLoads(bad, 'doc'), (e: unknown) => e instanceof FormatError && /^doc: invalid JSON/.test(e.message), bad);
  }
  const deep = `${'['.repeat(MAX_JSON_DEPTH + 2)}NaN${']'.repeat(MAX_JSON_DEPTH + 2)}`;
  assert.throws(() => pythonJsonLoads(deep), /nesting deeper than 1000 levels/);
});

test('property: pythonJsonLoads(pythonJsonDumps(v)) gives v back for any JSON value', () => {
  fc.assert(
    fc.property(fc.jsonValue(), (v) => {
      assert.deepStrictEqual(pythonJsonLoads(pythonJsonDumps(v as never)), structuredClone(v));
    }),
  );
  fc.assert(
    fc.property(fc.array(fc.double()), (xs) => {
      assert.deepStrictEqual(pythonJsonLoads(pythonJsonDumps(xs)), xs);
    }),
  );
});
