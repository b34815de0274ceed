import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ArgumentError, FormatError } from '../../errors.ts';
import { checkMemberName, isMetadataName, memberNameFor, splitMemberName, unsafeKeyReason, unsafeNameReason } from './names.ts';

test('splitMemberName follows base_plus_ext: key up to the first dot of the basename, suffix lowercased', () => {
  const cases: [string, [string, string] | undefined][] = [
    ['a/b/000123.jpg', ['a/b/000123', 'jpg']],
    ['x.seg.png', ['x', 'seg.png']],
    ['x.SEG.PNG', ['x', 'seg.png']],
    ['dir.v1/file.txt', ['dir.v1/file', 'txt']],
    ['./000.jpg', ['./000', 'jpg']],
    ['000.', ['000', '']],
    ['README', undefined],
    ['dir.v1/README', undefined],
    ['.hidden', undefined],
    ['a/b/', undefined],
    // The reference regex's quirk: a basename starting with '.' keys on the directory.
    ['a/.x', ['a/', 'x']],
  ];
  for (const [name, expected] of cases) {
    const got = splitMemberName(name);
    assert.deepEqual(got === undefined ? undefined : [got.key, got.suffix], expected, name);
  }
});

test('isMetadataName follows tar_file_iterator and skip_meta', () => {
  for (const name of ['__meta__', '__index__/shard.json', '____', '___', '__x__\n']) assert.ok(isMetadataName(name), name);
  for (const name of ['__a.jpg', 'a/__meta__', 'x.jpg', '__x__.jpg', '_meta_']) assert.ok(!isMetadataName(name), name);
});

test('unsafe names from a tar: .., absolute, backslash, NUL, empty, too long', () => {
  assert.equal(unsafeNameReason('a/b.jpg'), undefined);
  assert.equal(unsafeNameReason('./a.jpg'), undefined);
  assert.match(unsafeNameReason('../a.jpg')!, /'\.\.' segment/);
  assert.match(unsafeNameReason('a/..')!, /'\.\.' segment/);
  assert.match(unsafeNameReason('/a.jpg')!, /absolute/);
  assert.match(unsafeNameReason('a\\b.jpg')!, /backslash/);
  assert.match(unsafeNameReason('a\0.jpg')!, /NUL/);
  assert.match(unsafeNameReason('')!, /empty/);
  assert.match(unsafeNameReason('x'.repeat(5000))!, /over the limit/);
  assert.throws(() => checkMemberName('s.tar', '../x', 1024), (e: unknown) => e instanceof FormatError && /s\.tar: member "\.\.\/x" \(header at offset 1024\)/.test(e.message));
});

test('memberNameFor accepts keys and suffixes that read back, and names the field otherwise', () => {
  assert.equal(memberNameFor('a/b/000', 'seg.png'), 'a/b/000.seg.png');
  assert.equal(memberNameFor('dir.v1/x', 'json'), 'dir.v1/x.json');
  const refused: [string, string, RegExp][] = [
    ['', 'jpg', /empty/],
    ['a.b', 'jpg', /basename contains '\.'/],
    ['a/', 'jpg', /empty segment/],
    ['a//b', 'jpg', /empty segment/],
    ['./a', 'jpg', /'\.' segment/],
    ['../a', 'jpg', /'\.\.' segment/],
    ['/a', 'jpg', /absolute/],
    ['a\\b', 'jpg', /backslash/],
    ['a\nb', 'jpg', /control character/],
    ['a\ud800', 'jpg', /lone UTF-16 surrogate/],
    ['__meta__/x', 'jpg', /skip .* as metadata/],
    ['a', '', /empty suffix/],
    ['a', 'JPG', /lowercase|"jpg"/],
    ['a', 'x/y', /cannot contain '\/'/],
    ['a', '_private', /metadata/],
    ['a', '__key__', /metadata/],
    ['a', 'j\0g', /control/],
  ];
  for (const [key, suffix, pattern] of refused) {
    assert.throws(
      () => memberNameFor(key, suffix),
      (e: unknown) => e instanceof ArgumentError && pattern.test(e.message),
      `${JSON.stringify(key)} ${JSON.stringify(suffix)}`,
    );
  }
  assert.equal(unsafeKeyReason('a/b-1_x'), undefined);
});

test('property: every name memberNameFor accepts splits back into its key and suffix', () => {
  const segment = fc.stringMatching(/^[a-z0-9_.-]{1,6}$/).filter((s) => s !== '.' && s !== '..');
  const basename = fc.stringMatching(/^[a-z0-9_-]{1,6}$/);
  fc.assert(
    fc.property(fc.array(segment, { maxLength: 3 }), basename, fc.stringMatching(/^[a-z0-9][a-z0-9.]{0,6}$/), (dirs, base, suffix) => {
      const key = [...dirs, base].join('/');
      let name: string;
      try {
        name = memberNameFor(key, suffix);
      } catch (e) {
        assert.ok(e instanceof ArgumentError);
        return;
      }
      assert.deepEqual(splitMemberName(name), { key, suffix });
      assert.ok(!isMetadataName(name));
      assert.equal(unsafeNameReason(name), undefined);
    }),
  );
});
