/**
 * `shardline loader` as a process: against a real nats-server and a local dataset it serves an
 * epoch that matches the rank's plan, reports it on /metrics and /readyz, and exits 0 promptly
 * on SIGTERM; bad flags and variables exit 2 naming the flag. Config parsing is checked without
 * a process: flags over SHARDLINE_* variables over the defaults.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { BatchReceiver } from '@shardline/client';
import { connect } from 'nats';
import { freePort, makeTempDir, removeTempDir } from '../../../test/infra/supervisor.ts';
import { startNats, type NatsServer } from '../../../test/infra/nats.ts';
import { within } from '../../../test/delivery/support.ts';
import { planOf, readCheckedEpoch, startLoaderProcess, writeTestDataset } from '../../../test/loader/support.ts';
import { ConfigError, parseLoaderConfig } from '../config.ts';

const MAIN = path.join(import.meta.dirname, '..', 'main.ts');
let server: NatsServer;
let datasetDir: string;
let shardSizes: number[];
const dirs: string[] = [];

before(async () => {
  datasetDir = makeTempDir('cli-loader-dataset');
  dirs.push(datasetDir);
  [server, shardSizes] = await Promise.all([startNats({ jetstream: false }), writeTestDataset(datasetDir, 40)]);
});
after(async () => {
  await server?.stop();
  for (const dir of dirs) removeTempDir(dir);
});

const REQUIRED = ['--job', 'j', '--rank', '0', '--world-size', '1', '--dataset', '/data', '--cache-dir', '/cache', '--batch-size', '4'];

test('bad flags and variables are refused naming the flag; the process exits 2', () => {
  const flags = { job: 'j', rank: '0', worldSize: '1', dataset: '/data', cacheDir: '/cache', batchSize: '4' };
  const cases: Array<[Record<string, unknown>, NodeJS.ProcessEnv, RegExp]> = [
    [{ ...flags, job: 'Bad_Job' }, {}, /--job \(or SHARDLINE_JOB\) must be a DNS label/],
    [{ ...flags, rank: '1' }, {}, /--rank must be below --world-size 1/],
    [{ ...flags, shuffle: 'random' }, {}, /--shuffle \(or SHARDLINE_SHUFFLE\) must be one of none, global, shard-aware/],
    [{ ...flags, cacheBudget: 'lots' }, {}, /--cache-budget .* must be a size/],
    [{ ...flags, natsUrl: 'http://x' }, {}, /--nats-url .* must be nats:\/\/host:port/],
    [{ ...flags, dataset: 'gs://bucket/x' }, {}, /--dataset .* must be a local directory or s3:\/\/bucket\/prefix\//],
    [flags, { SHARDLINE_EPOCHS: '0' }, /--epochs \(or SHARDLINE_EPOCHS\) must be in \[1, 1000000\], got "0"/],
    [{ ...flags, workers: '-1' }, {}, /--workers \(or SHARDLINE_WORKERS\) must be in \[0, 64\]/],
    [{ ...flags, firstStep: 'x' }, {}, /--first-step \(or SHARDLINE_FIRST_STEP\) must be a number/],
    [flags, { SHARDLINE_HOST_ID: 'node a' }, /--host-id \(or SHARDLINE_HOST_ID\) must be 1 to 128 printable ASCII characters/],
    [{ ...flags, shmDir: '' }, {}, /--shm-dir \(or SHARDLINE_SHM_DIR\) must be a path/],
    [{ ...flags, maxHeld: 'lots' }, {}, /--max-held \(or SHARDLINE_MAX_HELD\) must be a size/],
  ];
  for (const [f, env, message] of cases) assert.throws(() => parseLoaderConfig(f, env), (e: unknown) => e instanceof ConfigError && message.test(e.message), String(message));
  // Through the real command line: a schema error and an unknown flag both exit 2.
  const spawned: Array<[string[], RegExp]> = [
    [REQUIRED.slice(2), /--job \(or SHARDLINE_JOB\) is required/],
    [[...REQUIRED, '--no-such-flag'], /unknown option '--no-such-flag'/],
  ];
  for (const [args, message] of spawned) {
    const run = spawnSync(process.execPath, [MAIN, 'loader', ...args], { encoding: 'utf8', env: { PATH: process.env.PATH }, timeout: 20_000 });
    assert.equal(run.status, 2, `${args.join(' ')}: exit 2, stderr ${run.stderr}`);
    assert.match(run.stderr, message);
  }
});

const REQUIRED_FLAGS = { job: 'j', rank: '0', worldSize: '1', dataset: '/data', cacheDir: '/cache', batchSize: '4' };

test('flags win over SHARDLINE_* variables, which win over the defaults', () => {
  const config = parseLoaderConfig(
    { job: 'flag-job', rank: '1', cacheBudget: '512mb' },
    { SHARDLINE_JOB: 'env-job', SHARDLINE_WORLD_SIZE: '4', SHARDLINE_DATASET: 's3://bucket/train/', SHARDLINE_CACHE_DIR: 'cache', SHARDLINE_BATCH_SIZE: '32', NATS_URL: 'nats://a:4222,nats://b:4222' },
  );
  assert.equal(config.job, 'flag-job');
  assert.equal(config.worldSize, 4);
  assert.deepEqual(config.dataset, { type: 's3', url: 's3://bucket/train/', bucket: 'bucket', prefix: 'train/' });
  assert.equal(config.cacheDir, path.resolve('cache'));
  assert.equal(config.cacheBudgetBytes, 512 * 1024 * 1024);
  assert.deepEqual(config.natsUrls, ['nats://a:4222', 'nats://b:4222']);
  assert.deepEqual([config.namespace, config.epochs, config.seed, config.shuffle, config.metricsPort], ['default', 1, 0, 'shard-aware', 9090]);
  assert.deepEqual([config.workers, config.firstEpoch, config.firstStep, config.shmDir, config.hostId], [2, 0, 0, '/dev/shm', undefined]);
  assert.equal(config.maxHeldBytes, undefined);
  const resumed = parseLoaderConfig({ ...REQUIRED_FLAGS, workers: '0', firstEpoch: '2', firstStep: '7', shmDir: 'off' }, { SHARDLINE_HOST_ID: 'node-a', SHARDLINE_MAX_HELD: '128mb' });
  assert.deepEqual(
    [resumed.workers, resumed.firstEpoch, resumed.firstStep, resumed.shmDir, resumed.hostId, resumed.maxHeldBytes],
    [0, 2, 7, false, 'node-a', 128 * 1024 * 1024],
  );
  assert.throws(() => parseLoaderConfig({}, {}), ConfigError);
});

test('the loader process serves an epoch of its plan, reports it, and exits 0 on SIGTERM', async (t) => {
  const job = 'cli-loader';
  const port = await freePort();
  const cacheDir = makeTempDir('cli-loader-cache');
  dirs.push(cacheDir);
  const loader = startLoaderProcess(t, ['--job', job, '--namespace', 'test', '--rank', '1', '--world-size', '2', '--dataset', datasetDir, '--nats-url', server.url,
    '--cache-dir', cacheDir, '--cache-budget', '1mb', '--batch-size', '3', '--epochs', '3', '--seed', '5', '--shuffle', 'global', '--metrics-port', String(port), '--log-level', 'warn']);

  const nc = await connect({ servers: server.url });
  t.after(() => nc.close());
  const receiver = await BatchReceiver.connect(nc, { namespace: 'test', job, rank: 1, window: 2 });
  const plan = planOf({ job, rank: 1, worldSize: 2, batchSize: 3, epochs: 3, seed: 5, shuffle: 'global', cacheDir, cacheBudgetBytes: 1 << 20 }, shardSizes, 0);
  const ids = await within(readCheckedEpoch(receiver, plan, job, 1), 20_000, 'an epoch from the loader process');
  assert.equal(ids.length, plan.perRank);
  await receiver.close();

  assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
  assert.deepEqual(await (await fetch(`http://127.0.0.1:${port}/readyz`)).json(), { ready: true, checks: { datasetIndex: true, nats: true } });
  // The last ack of the epoch travels with the receiver's close; give it a moment to be counted.
  let delivered = 0;
  for (let i = 0; i < 50 && delivered < plan.numBatches; i++) {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith('shardline_batches_delivered_total{'));
    delivered = Number(line?.split(' ').at(-1));
    if (delivered < plan.numBatches) await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(delivered >= plan.numBatches - 1 && delivered <= plan.numBatches, `batches delivered ${delivered} of ${plan.numBatches}`);

  const stopped = performance.now();
  loader.child.kill('SIGTERM');
  const code = await within(loader.exited, 15_000, 'the loader exiting after SIGTERM');
  assert.equal(code, 0, `exit 0 after SIGTERM; stderr:\n${loader.stderr()}`);
  assert.ok(performance.now() - stopped < 10_000, 'within the drain bound and a little more');
});
