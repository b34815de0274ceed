/** Subject names: the documented layout, and no way for a name to inject tokens or wildcards. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ArgumentError } from '../errors.ts';
import { SUBJECT_TOKEN, deliverySubjects, jobSubjectPrefix } from './subjects.ts';

test('a rank has four subjects under its job prefix', () => {
  assert.deepEqual(deliverySubjects({ namespace: 'ml-team', job: 'mnist-2', rank: 7 }), {
    hello: 'shardline.ml-team.mnist-2.rank.7.hello',
    ctl: 'shardline.ml-team.mnist-2.rank.7.ctl',
    data: 'shardline.ml-team.mnist-2.rank.7.data',
    events: 'shardline.ml-team.mnist-2.rank.7.events',
  });
  assert.equal(deliverySubjects({ job: 'j', rank: 0 }).data, 'shardline.default.j.rank.0.data');
  assert.equal(jobSubjectPrefix('a', 'b'), 'shardline.a.b');
});

test('names that could inject subject tokens or wildcards are refused, naming the field', () => {
  for (const job of ['', 'a.b', 'a*', '>', 'a b', 'A', '-a', 'a-', 'a\n', 'ä', 'a'.repeat(64), '../x', 'a\u0000']) {
    assert.throws(
      () => deliverySubjects({ job, rank: 0 }),
      (e: unknown) => e instanceof ArgumentError && e.argument === 'job',
      JSON.stringify(job),
    );
  }
  assert.throws(() => deliverySubjects({ namespace: 'x.>', job: 'j', rank: 0 }), /namespace: must be 1 to 63/);
  for (const rank of [-1, 1.5, 2 ** 32, Number.NaN, '1' as unknown as number]) {
    assert.throws(() => deliverySubjects({ job: 'j', rank }), /rank: must be an integer in \[0, 4294967295\]/);
  }
});

test('every accepted name gives subjects of exactly six plain tokens', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 70 }), fc.string({ maxLength: 70 }), fc.nat(), (namespace, job, rank) => {
      let subjects;
      try {
        subjects = deliverySubjects({ namespace, job, rank });
      } catch (error) {
        assert.ok(error instanceof ArgumentError);
        return;
      }
      assert.ok(SUBJECT_TOKEN.test(namespace) && SUBJECT_TOKEN.test(job));
      for (const subject of Object.values(subjects)) {
        const tokens = subject.split('.');
        assert.equal(tokens.length, 6);
        assert.ok(tokens.every((t: string) => /^[a-z0-9-]+$/.test(t)));
      }
    }),
  );
});
