import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { serverBinary } from '../../test/infra/binaries.ts';

const main = fileURLToPath(new URL('./main.ts', import.meta.url));

function shardline(...args: string[]) {
  const r = spawnSync(process.execPath, [main, ...args], { encoding: 'utf8', env: { ...process.env, SHARDLINE_LOG_LEVEL: 'warn' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('the demo runs a whole local job: exactly once per epoch, equal batches per rank, same order for the same seed', () => {
  const args = (workers: number) =>
    ['demo', '--samples', '3000', '--batch-size', '50', '--workers', String(workers), '--epochs', '2', '--ranks', '3', '--no-progress', '--json', '--no-data-plane'];
  const a = shardline(...args(2));
  assert.equal(a.code, 0, a.stderr);
  const summary = JSON.parse(a.stdout.trim().split('\n').at(-1)!);
  assert.equal(summary.ok, true);
  assert.equal(summary.epochs.length, 2);
  for (const e of summary.epochs) {
    assert.equal(e.samples, 3000);
    assert.equal(e.duplicates, 0);
    assert.equal(e.missing, 0);
    assert.equal(e.batches, 60);
  }
  assert.notEqual(summary.epochs[0].fingerprint, summary.epochs[1].fingerprint, 'epochs are shuffled differently');
  assert.equal(new Set(summary.ranks.map((r: { batches: number }) => r.batches)).size, 1);
  assert.deepEqual(summary.dataPlane, { skipped: '--no-data-plane' });

  const b = shardline(...args(0));
  assert.equal(b.code, 0, b.stderr);
  const again = JSON.parse(b.stdout.trim().split('\n').at(-1)!);
  assert.deepEqual(
    again.epochs.map((e: { fingerprint: string }) => e.fingerprint),
    summary.epochs.map((e: { fingerprint: string }) => e.fingerprint),
    'in-process loading (0 workers) yields the same order as 2 workers for the same seed',
  );
});

test('the demo runs the data plane: a loader per rank serves its trainer every epoch of its plan over a real nats-server', () => {
  const r = shardline(
    'demo', '--samples', '1500', '--batch-size', '50', '--epochs', '2', '--ranks', '2', '--no-progress', '--json', '--nats-server', serverBinary('nats-server'),
  );
  assert.equal(r.code, 0, r.stderr);
  const { ok, dataPlane } = JSON.parse(r.stdout.trim().split('\n').at(-1)!);
  assert.equal(ok, true, JSON.stringify(dataPlane));
  assert.equal(dataPlane.ok, true);
  assert.equal(dataPlane.ranks, 2);
  assert.ok(dataPlane.shards >= 4, `${dataPlane.shards} shards`);
  assert.deepEqual(
    dataPlane.epochs.map((e: Record<string, number>) => [e.samples, e.duplicates, e.missing, e.offPlan]),
    [[1500, 0, 0, 0], [1500, 0, 0, 0]],
    'every sample once per epoch (1500 split evenly, no padding), every batch its rank\'s plan',
  );
  assert.equal(dataPlane.batchesDelivered, dataPlane.batchesPlanned);
  assert.equal(dataPlane.batchesPlanned, 2 * 2 * 15);
  assert.equal(dataPlane.loadersFinished, 2);
  assert.ok(dataPlane.shmBatches > 0, 'trainers on the loaders\' host read through shared memory');
  assert.ok(dataPlane.cacheBytesFetched >= dataPlane.datasetBytes, 'the caches fetched the shards');
  assert.ok(dataPlane.bytes > 1500 * 2 * 3 * 32 * 32 * 4, 'the images travelled');

  const skipped = spawnSync(process.execPath, [main, 'demo', '--samples', '200', '--no-progress', '--json'], {
    encoding: 'utf8',
    env: { ...process.env, SHARDLINE_LOG_LEVEL: 'warn', SHARDLINE_NATS_SERVER: '' },
  });
  assert.equal(skipped.status, 0, skipped.stderr);
  assert.match(JSON.parse(skipped.stdout.trim().split('\n').at(-1)!).dataPlane.skipped, /no nats-server: `npm start` installs one/);
  assert.match(skipped.stderr, /data plane skipped/);

  const relative = shardline('demo', '--nats-server', 'bin/nats-server');
  assert.equal(relative.code, 2);
  assert.match(relative.stderr, /--nats-server \(or SHARDLINE_NATS_SERVER\) must be an absolute path/);
  const missing = shardline('demo', '--samples', '100', '--nats-server', '/nonexistent/nats-server');
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /\/nonexistent\/nats-server is not an executable file/);
  assert.doesNotMatch(missing.stderr, /\n\s+at /, 'a usage error, not a stack trace');
  const badUrl = shardline('demo', '--nats-url', 'http://x');
  assert.equal(badUrl.code, 2);
  assert.match(badUrl.stderr, /--nats-url must be nats:\/\/host:port/);
});

test('wrong flags get a clear message and a non-zero exit', () => {
  const unknown = shardline('demo', '--bogus');
  assert.notEqual(unknown.code, 0);
  assert.match(unknown.stderr, /unknown option '--bogus'/);
  const bad = shardline('demo', '--batch-size', '0');
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--batch-size must be in \[1, 65536\], got "0"/);
});
