import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const main = fileURLToPath(new URL('./main.ts', import.meta.url));

function shardline(...args: string[]) {
  const r = spawnSync(process.execPath, [main, ...args], { encoding: 'utf8', env: { ...process.env, SHARDLINE_LOG_LEVEL: 'warn' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('the demo runs a whole local job: exactly once per epoch, equal batches per rank, same order for the same seed', () => {
  const args = (workers: number) =>
    ['demo', '--samples', '3000', '--batch-size', '50', '--workers', String(workers), '--epochs', '2', '--ranks', '3', '--no-progress', '--json'];
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

  const b = shardline(...args(0));
  assert.equal(b.code, 0, b.stderr);
  const again = JSON.parse(b.stdout.trim().split('\n').at(-1)!);
  assert.deepEqual(
    again.epochs.map((e: { fingerprint: string }) => e.fingerprint),
    summary.epochs.map((e: { fingerprint: string }) => e.fingerprint),
    'in-process loading (0 workers) yields the same order as 2 workers for the same seed',
  );
});

test('wrong flags get a clear message and a non-zero exit', () => {
  const unknown = shardline('demo', '--bogus');
  assert.notEqual(unknown.code, 0);
  assert.match(unknown.stderr, /unknown option '--bogus'/);
  const bad = shardline('demo', '--batch-size', '0');
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--batch-size must be in \[1, 65536\], got "0"/);
});
