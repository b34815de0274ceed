/**
 * The loader's metrics and their HTTP server: cache events and acks move the right counters,
 * the window gauges are read at scrape time, and the server answers /metrics, /healthz and
 * /readyz (503 until every check passes) over real HTTP.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ArgumentError } from '@shardline/core';
import { metricValue } from '../../test/infra/metrics-text.ts';
import { LoaderMetrics, startMetricsServer } from './metrics.ts';

test('cache events, deliveries and the sender window move the right series', async () => {
  const metrics = new LoaderMetrics({ labels: { job: 'm', rank: '3' } });
  metrics.onCacheEvent({ type: 'miss', key: 'a' });
  metrics.onCacheEvent({ type: 'downloaded', key: 'a', bytes: 1000, prefetch: false, ms: 3 });
  metrics.onCacheEvent({ type: 'downloaded', key: 'b', bytes: 24, prefetch: true, ms: 3 });
  metrics.onCacheEvent({ type: 'hit', key: 'a' });
  metrics.onCacheEvent({ type: 'hit', key: 'b' });
  metrics.onCacheEvent({ type: 'evicted', key: 'a', bytes: 1000, nextUse: -1 });
  metrics.onCacheEvent({ type: 'verification-failed', key: 'c', failures: 1, error: 'hash' });
  metrics.onCacheEvent({ type: 'adopted', key: 'd', bytes: 5 });
  metrics.onDelivered({ samples: 8, bytes: 512, seconds: 0.02 });
  metrics.onDelivered({ samples: 3, bytes: 100, seconds: 2 });
  let window = { inFlight: 2, heldBatches: 5 };
  metrics.watchSender(() => window);
  metrics.onSenderEvent({ type: 'trainer-wait', session: 1, seconds: 1 });
  metrics.onSenderEvent({ type: 'trainer-wait', session: 1, seconds: 0.25 });
  metrics.onSenderEvent({ type: 'bye', session: 1 });
  metrics.onShmBatch();
  let text = await metrics.text();
  const expected = {
    shardline_cache_hits_total: 2,
    shardline_cache_misses_total: 1,
    shardline_cache_evictions_total: 1,
    shardline_cache_bytes_in_total: 1024,
    shardline_cache_verification_failures_total: 1,
    shardline_batches_delivered_total: 2,
    shardline_samples_delivered_total: 11,
    shardline_bytes_delivered_total: 612,
    shardline_delivery_latency_seconds_count: 2,
    shardline_delivery_latency_seconds_sum: 2.02,
    shardline_credits_in_flight: 2,
    shardline_batches_held: 5,
    shardline_trainer_wait_seconds_total: 1.25,
    shardline_shm_batches_total: 1,
  };
  for (const [name, v] of Object.entries(expected)) assert.equal(metricValue(text, name), v, name);
  assert.match(text, /shardline_delivery_latency_seconds_bucket\{le="0\.025",job="m",rank="3"\} 1/);
  window = { inFlight: 0, heldBatches: 1 };
  metrics.watchSender(undefined);
  text = await metrics.text();
  assert.equal(metricValue(text, 'shardline_credits_in_flight'), 0, 'no sender: the gauges read 0');
  // Two instances never share series (no global registry).
  assert.equal(metricValue(await new LoaderMetrics().text(), 'shardline_batches_delivered_total'), 0);
});

test('batch build times and the pipeline stage depths are exposed', async () => {
  const metrics = new LoaderMetrics({ labels: { job: 'm' } });
  metrics.onBatchBuilt(0.004);
  metrics.onBatchBuilt(0.3);
  let text = await metrics.text();
  assert.equal(metricValue(text, 'shardline_batch_build_seconds_count'), 2);
  assert.equal(metricValue(text, 'shardline_batch_build_seconds_sum'), 0.304);
  assert.match(text, /shardline_batch_build_seconds_bucket\{le="0\.005",job="m"\} 1/);
  assert.match(text, /shardline_pipeline_queue_depth\{stage="decode",job="m"\} 0/, 'no pipeline: the gauges read 0');
  let depths = { decode: 3, send: 1 };
  metrics.watchStages(() => depths);
  text = await metrics.text();
  assert.match(text, /shardline_pipeline_queue_depth\{stage="decode",job="m"\} 3/);
  assert.match(text, /shardline_pipeline_queue_depth\{stage="send",job="m"\} 1/);
  depths = { decode: 0, send: 2 };
  text = await metrics.text();
  assert.match(text, /shardline_pipeline_queue_depth\{stage="decode",job="m"\} 0/, 'read at each scrape');
  assert.match(text, /shardline_pipeline_queue_depth\{stage="send",job="m"\} 2/);
  metrics.watchStages(undefined);
  assert.match(await metrics.text(), /shardline_pipeline_queue_depth\{stage="send",job="m"\} 0/);
});

test('build steps, S3 request attempts and the cache use are exposed', async () => {
  const metrics = new LoaderMetrics({ labels: { job: 'm' } });
  metrics.onBatchBuilt(0.1, { decode: 0.06, transform: 0.02, collate: 0.003, encode: 0.017 });
  metrics.onBatchBuilt(0.2, { decode: 0.15, transform: 0, collate: 0.01, encode: 0.04 });
  metrics.onS3Request({ operation: 'download', key: 'a', outcome: 'ok', seconds: 0.5, attempt: 1 });
  metrics.onS3Request({ operation: 'download', key: 'b', outcome: 'retried', seconds: 0.25, attempt: 1, error: 'SlowDown, HTTP 503' });
  metrics.onS3Request({ operation: 'download', key: 'b', outcome: 'ok', seconds: 0.75, attempt: 2 });
  metrics.onS3Request({ operation: 'stat', key: 'c', outcome: 'not-found', seconds: 0.01, attempt: 1, error: 'NotFound, HTTP 404' });
  metrics.onS3Request({ operation: 'read', key: 'd', outcome: 'failed', seconds: 0.02, attempt: 3, error: 'ECONNRESET' });
  let text = await metrics.text();
  assert.equal(metricValue(text, 'shardline_batch_stage_seconds_count', 'stage="decode"'), 2);
  assert.ok(Math.abs(metricValue(text, 'shardline_batch_stage_seconds_sum', 'stage="decode"') - 0.21) < 1e-9);
  assert.ok(Math.abs(metricValue(text, 'shardline_batch_stage_seconds_sum', 'stage="encode"') - 0.057) < 1e-9);
  assert.equal(metricValue(text, 'shardline_batch_stage_seconds_count', 'stage="collate"'), 2);
  assert.equal(metricValue(text, 'shardline_batch_stage_seconds_count', 'stage="transform"'), 2);
  assert.equal(metricValue(text, 'shardline_s3_request_seconds_count', 'operation="download"'), 3);
  assert.equal(metricValue(text, 'shardline_s3_request_seconds_sum', 'operation="download"'), 1.5);
  assert.equal(metricValue(text, 'shardline_s3_request_seconds_count', 'operation="stat"'), 1);
  assert.equal(metricValue(text, 'shardline_s3_request_errors_total', 'operation="download"', 'outcome="retried"'), 1);
  assert.equal(metricValue(text, 'shardline_s3_request_errors_total', 'operation="stat"', 'outcome="not-found"'), 1);
  assert.equal(metricValue(text, 'shardline_s3_request_errors_total', 'operation="read"', 'outcome="failed"'), 1);
  assert.doesNotMatch(text, /shardline_s3_request_errors_total\{[^}]*outcome="ok"/, 'successes are not errors');
  assert.equal(metricValue(text, 'shardline_cache_bytes'), 0, 'no cache: the gauges read 0');
  const cache = { usedBytes: 3000, budgetBytes: 8192 };
  metrics.watchCache(() => cache);
  cache.usedBytes = 5000;
  text = await metrics.text();
  assert.equal(metricValue(text, 'shardline_cache_bytes'), 5000, 'read at each scrape');
  assert.equal(metricValue(text, 'shardline_cache_budget_bytes'), 8192);
});

test('the server answers /metrics, /healthz and /readyz, and refuses the rest', async (t) => {
  const metrics = new LoaderMetrics();
  metrics.batchesDelivered.inc(7);
  const checks = { datasetIndex: false, nats: true };
  const server = await startMetricsServer({ registry: metrics.registry, port: 0, host: '127.0.0.1', ready: () => checks });
  t.after(() => server.close());
  const m = await fetch(`${server.url}/metrics`);
  assert.equal(m.status, 200);
  assert.match(m.headers.get('content-type') ?? '', /^text\/plain/);
  assert.equal(metricValue(await m.text(), 'shardline_batches_delivered_total'), 7);
  assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
  const notReady = await fetch(`${server.url}/readyz`);
  assert.equal(notReady.status, 503);
  assert.deepEqual(await notReady.json(), { ready: false, checks: { datasetIndex: false, nats: true } });
  checks.datasetIndex = true;
  assert.equal((await fetch(`${server.url}/readyz?verbose`)).status, 200);
  assert.equal((await fetch(`${server.url}/nope`)).status, 404);
  assert.equal((await fetch(`${server.url}/metrics`, { method: 'POST' })).status, 405);
  await server.close();
  await server.close();
  await assert.rejects(fetch(`${server.url}/healthz`), 'closed');
});

test('a bad or taken port is a clear error', async (t) => {
  const registry = new LoaderMetrics().registry;
  await assert.rejects(startMetricsServer({ registry, port: 70_000, ready: () => ({}) }), (e: unknown) => e instanceof ArgumentError && e.argument === 'port');
  const first = await startMetricsServer({ registry, port: 0, host: '127.0.0.1', ready: () => ({}) });
  t.after(() => first.close());
  await assert.rejects(startMetricsServer({ registry, port: first.port, host: '127.0.0.1', ready: () => ({}) }), /EADDRINUSE/);
});
