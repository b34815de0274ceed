import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ArgumentError, FormatError } from '../errors.ts';
import { WIRE_VERSION, batchMetadataFromStrings, batchMetadataToStrings, parseSampleIds } from './batch-metadata.ts';

test('batch metadata becomes strings in a fixed order, extra keys sorted after', () => {
  const strings = batchMetadataToStrings({
    job: 'mnist',
    epoch: 3,
    rank: 12,
    step: 0,
    sampleIds: [5, 0, 2 ** 53 - 1],
    extra: { zeta: 'z', alpha: 'a' },
  });
  assert.deepEqual(Object.entries(strings), [
    ['wire_version', WIRE_VERSION],
    ['job', 'mnist'],
    ['epoch', '3'],
    ['rank', '12'],
    ['step', '0'],
    ['sample_ids', '[5,0,9007199254740991]'],
    ['alpha', 'a'],
    ['zeta', 'z'],
  ]);
  assert.deepEqual(batchMetadataFromStrings(strings), {
    job: 'mnist', epoch: 3, rank: 12, step: 0, sampleIds: [5, 0, 2 ** 53 - 1], extra: { alpha: 'a', zeta: 'z' },
  });
});

test('an extra key named __proto__ stays a plain field', () => {
  const extra = JSON.parse('{"__proto__":"p"}') as Record<string, string>;
  const strings = batchMetadataToStrings({ job: 'j', epoch: 0, rank: 0, step: 0, sampleIds: [], extra });
  assert.equal(Object.getPrototypeOf(strings), Object.prototype);
  assert.ok(Object.hasOwn(strings, '__proto__'));
  assert.equal(batchMetadataFromStrings(strings).extra['__proto__'], 'p');
});

test('sample ids parse as Python json.dumps writes them, and nothing looser', () => {
  assert.deepEqual(parseSampleIds('[]'), []);
  assert.deepEqual(parseSampleIds(' [ ] '), []);
  assert.deepEqual(parseSampleIds('[1, 2, 3]'), [1, 2, 3]);
  assert.deepEqual(parseSampleIds('[\n  0,\n  9007199254740991\n]'), [0, 2 ** 53 - 1]);
  for (const bad of ['', '[', ']', '[,]', '[1,]', '[01]', '[1e3]', '[1.0]', '["1"]', '[null]', '[-0]', '[1][2]', '{"a":1}', '[9007199254740992]', '[99999999999999999999]']) {
    assert.throws(() => parseSampleIds(bad), FormatError, JSON.stringify(bad));
  }
  fc.assert(
    fc.property(fc.array(fc.maxSafeNat(), { maxLength: 50 }), (ids) => {
      assert.deepEqual(parseSampleIds(JSON.stringify(ids)), ids);
      assert.deepEqual(parseSampleIds(`[${ids.join(', ')}]`), ids);
    }),
  );
});

test('property: any valid metadata survives the trip through strings', () => {
  fc.assert(
    fc.property(
      fc.record({
        job: fc.string({ minLength: 1 }),
        epoch: fc.maxSafeNat(),
        rank: fc.maxSafeNat(),
        step: fc.maxSafeNat(),
        sampleIds: fc.array(fc.maxSafeNat()),
        extra: fc.dictionary(fc.string().map((k) => `x-${k}`), fc.string(), { noNullPrototype: true }),
      }, { noNullPrototype: true }),
      (metadata) => {
        assert.deepEqual(batchMetadataFromStrings(batchMetadataToStrings(metadata)), metadata);
      },
    ),
  );
});

test('every bad field is named', () => {
  const good = { job: 'j', epoch: 0, rank: 0, step: 0, sampleIds: [1] };
  assert.throws(() => batchMetadataToStrings({ ...good, job: 3 as unknown as string }), (e: unknown) => e instanceof ArgumentError && e.argument === 'metadata.job');
  assert.throws(() => batchMetadataToStrings({ ...good, epoch: 2 ** 53 }), (e: unknown) => e instanceof ArgumentError && e.argument === 'metadata.epoch');
  assert.throws(() => batchMetadataToStrings({ ...good, sampleIds: [0, 1, 0.5] }), (e: unknown) => e instanceof ArgumentError && e.argument === 'metadata.sampleIds[2]');
  assert.throws(() => batchMetadataToStrings({ ...good, extra: ['x'] as unknown as Record<string, string> }), (e: unknown) => e instanceof ArgumentError && e.argument === 'metadata.extra');
  assert.throws(() => batchMetadataToStrings({ ...good, extra: { job: 'x' } }), (e: unknown) => e instanceof ArgumentError && e.argument === 'metadata.extra.job');
  assert.throws(() => batchMetadataToStrings({ ...good, extra: { ok: '\udfff' } }), (e: unknown) => e instanceof ArgumentError && e.argument === 'metadata.extra.ok');
  assert.throws(() => batchMetadataFromStrings(undefined), /no __metadata__/);
  assert.throws(() => batchMetadataFromStrings({}), /missing required field "wire_version"/);
});
