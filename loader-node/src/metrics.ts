/**
 * The loader's Prometheus metrics (prom-client, `shardline_` prefix) and the small HTTP server
 * that serves them with the probes: `/metrics`, `/healthz` (the process answers) and `/readyz`
 * (every readiness check passes: the dataset index was read, NATS is connected…).
 *
 * Counters follow what happened (cache events, acks reported by the delivery protocol); the
 * window gauges are read from the sender when Prometheus scrapes, so they cost nothing between
 * scrapes.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ArgumentError } from '@shardline/core';
import type { SenderEvent } from '@shardline/core/protocol';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { CacheEvent } from './cache/shard-cache.ts';
import type { StageSeconds } from './loader/batch-builder.ts';
import type { S3RequestEvent } from './store/s3-source.ts';

/** The window of a batch sender, as the gauges read it (BatchSender's `stats()` has these fields). */
export interface SenderWindow {
  /** Batches published in the session and not acked: the trainer's credit in use. */
  readonly inFlight: number;
  /** Batches held until acked (published or waiting for credit). */
  readonly heldBatches: number;
}

/** Batches in each stage of the loader pipeline now (read when Prometheus scrapes). */
export interface StageDepths {
  /** Batches being read, decoded, transformed, collated and encoded (on worker threads or the main thread). */
  readonly decode: number;
  /** Batches built and waiting for the sender to take them (it waits for the trainer's credit). */
  readonly send: number;
}

/** The disk cache's use, as the gauges read it (ShardCache's `stats()` and `budgetBytes` have these fields). */
export interface CacheUsage {
  readonly usedBytes: number;
  readonly budgetBytes: number;
}

/** Options of {@link LoaderMetrics}. */
export interface LoaderMetricsOptions {
  /** Labels on every series, e.g. `{ namespace, job, rank }`. */
  readonly labels?: Readonly<Record<string, string>>;
  /** Bucket bounds of the delivery-latency, batch-build, build-stage and S3-request histograms, in seconds. */
  readonly latencyBuckets?: readonly number[];
}

const DEFAULT_LATENCY_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/**
 * The metrics of one loader process, in a Registry of their own (no process-global state, so
 * tests and several loaders in one process do not collide).
 * @example
 * const metrics = new LoaderMetrics({ labels: { job: 'mnist', rank: '0' } });
 * const source = new S3Source({ ...options, onRequest: (e) => metrics.onS3Request(e) });
 * const opened = await openCachedMDSDataset({ source, ..., onEvent: (e) => metrics.onCacheEvent(e) });
 * metrics.watchCache(() => opened.cache.stats());
 * metrics.watchSender(() => sender.stats());
 * const server = await startMetricsServer({ registry: metrics.registry, port: 9090, ready: () => ({ nats: true }) });
 */
export class LoaderMetrics {
  readonly registry: Registry;
  /** Batches, samples and bytes the trainer acked (delivered means consumed by the trainer). */
  readonly batchesDelivered: Counter;
  readonly samplesDelivered: Counter;
  readonly bytesDelivered: Counter;
  /** Batches the trainer's credit let through and it has not acked. */
  readonly creditsInFlight: Gauge;
  /** Batches the sender holds until acked (in flight or waiting for credit). */
  readonly batchesHeld: Gauge;
  readonly cacheHits: Counter;
  readonly cacheMisses: Counter;
  readonly cacheEvictions: Counter;
  readonly cacheBytesIn: Counter;
  readonly verificationFailures: Counter;
  /** From a batch handed to the sender until the trainer acked it, in seconds. */
  readonly deliveryLatency: Histogram;
  /**
   * Seconds the trainer's consumer waited for batches, as its client reports them with each
   * credit (docs/protocol.md, `credit.waitedSeconds`). `rate()` of it is the share of time the
   * trainer starves: the data-wait signal of adaptive batch sizing.
   */
  readonly trainerWait: Counter;
  /** Batches that travelled through shared memory instead of NATS. */
  readonly shmBatches: Counter;
  /** Time to build one batch (read, decode, transform, collate, encode), measured where it was built. */
  readonly batchBuild: Histogram;
  /** Seconds of each step of building a batch (`stage` label: `decode`, `transform`, `collate`, `encode`). */
  readonly buildStage: Histogram;
  /** Batches in each pipeline stage (`stage` label: `decode`, `send`). */
  readonly stageDepth: Gauge;
  /** Bytes of shard files in the disk cache now, and its budget. */
  readonly cacheBytes: Gauge;
  readonly cacheBudgetBytes: Gauge;
  /** S3 request attempts by `operation` (stat, read, readRange, download), in seconds. */
  readonly s3Requests: Histogram;
  /** S3 request attempts that did not succeed, by `operation` and `outcome` (retried, failed, not-found). */
  readonly s3Errors: Counter;
  #window: (() => SenderWindow | undefined) | undefined;
  #stages: (() => StageDepths | undefined) | undefined;
  #cache: (() => CacheUsage | undefined) | undefined;

  constructor(options: LoaderMetricsOptions = {}) {
    this.registry = new Registry();
    if (options.labels !== undefined) this.registry.setDefaultLabels({ ...options.labels });
    const registers = [this.registry];
    const buckets = [...(options.latencyBuckets ?? DEFAULT_LATENCY_BUCKETS)];
    const counter = (name: string, help: string) => new Counter({ name: `shardline_${name}`, help, registers });
    this.batchesDelivered = counter('batches_delivered_total', 'Batches delivered to and acked by the trainer.');
    this.samplesDelivered = counter('samples_delivered_total', 'Samples in the batches acked by the trainer.');
    this.bytesDelivered = counter('bytes_delivered_total', 'Encoded bytes of the batches acked by the trainer.');
    this.cacheHits = counter('cache_hits_total', 'Shard requests served from the disk cache.');
    this.cacheMisses = counter('cache_misses_total', 'Shard requests that had to wait for a download.');
    this.cacheEvictions = counter('cache_evictions_total', 'Shard files evicted from the disk cache.');
    this.cacheBytesIn = counter('cache_bytes_in_total', 'Bytes downloaded into the disk cache.');
    this.verificationFailures = counter('cache_verification_failures_total', 'Downloaded shards that failed verification (size or hash).');
    this.creditsInFlight = new Gauge({
      name: 'shardline_credits_in_flight',
      help: 'Batches published under the trainer credit and not yet acked.',
      registers,
      collect: () => this.creditsInFlight.set(this.#window?.()?.inFlight ?? 0),
    });
    this.batchesHeld = new Gauge({
      name: 'shardline_batches_held',
      help: 'Batches the loader holds until the trainer acks them (in flight or waiting for credit).',
      registers,
      collect: () => this.batchesHeld.set(this.#window?.()?.heldBatches ?? 0),
    });
    this.deliveryLatency = new Histogram({
      name: 'shardline_delivery_latency_seconds',
      help: 'Time from a batch ready to send until the trainer acked it.',
      buckets,
      registers,
    });
    this.trainerWait = counter('trainer_wait_seconds_total', 'Seconds the trainer waited for batches (data-wait), as its client reports them.');
    this.shmBatches = counter('shm_batches_total', 'Batches placed in shared memory for a trainer on the same host (descriptors over NATS).');
    this.batchBuild = new Histogram({
      name: 'shardline_batch_build_seconds',
      help: 'Time to read, decode, transform, collate and encode one batch, measured on the thread that built it.',
      buckets,
      registers,
    });
    this.buildStage = new Histogram({
      name: 'shardline_batch_stage_seconds',
      help: 'Time of each step of building one batch: decode (read the samples from the cached shards and decode them), transform, collate, encode.',
      labelNames: ['stage'],
      buckets,
      registers,
    });
    this.cacheBytes = new Gauge({
      name: 'shardline_cache_bytes',
      help: 'Bytes of shard files in the disk cache.',
      registers,
      collect: () => this.cacheBytes.set(this.#cache?.()?.usedBytes ?? 0),
    });
    this.cacheBudgetBytes = new Gauge({
      name: 'shardline_cache_budget_bytes',
      help: 'The disk cache budget in bytes.',
      registers,
      collect: () => this.cacheBudgetBytes.set(this.#cache?.()?.budgetBytes ?? 0),
    });
    this.s3Requests = new Histogram({
      name: 'shardline_s3_request_seconds',
      help: 'S3 request attempts (headers and body, the wait for a connection slot left out), by operation.',
      labelNames: ['operation'],
      buckets,
      registers,
    });
    this.s3Errors = new Counter({
      name: 'shardline_s3_request_errors_total',
      help: 'S3 request attempts that did not succeed, by operation and outcome: retried (transient, tried again), failed (given up), not-found.',
      labelNames: ['operation', 'outcome'],
      registers,
    });
    this.stageDepth = new Gauge({
      name: 'shardline_pipeline_queue_depth',
      help: 'Batches in a loader pipeline stage: decode (being built), send (built, waiting for the sender).',
      labelNames: ['stage'],
      registers,
      collect: () => {
        const depths = this.#stages?.();
        this.stageDepth.set({ stage: 'decode' }, depths?.decode ?? 0);
        this.stageDepth.set({ stage: 'send' }, depths?.send ?? 0);
      },
    });
  }

  /** Counts one cache event (pass it as the cache's `onEvent`). */
  onCacheEvent(event: CacheEvent): void {
    switch (event.type) {
      case 'hit':
        this.cacheHits.inc();
        break;
      case 'miss':
        this.cacheMisses.inc();
        break;
      case 'evicted':
        this.cacheEvictions.inc();
        break;
      case 'downloaded':
        this.cacheBytesIn.inc(event.bytes);
        break;
      case 'verification-failed':
        this.verificationFailures.inc();
        break;
      default:
        break;
    }
  }

  /** A batch the trainer acked: `seconds` since it was handed to the sender. */
  onDelivered(batch: { readonly samples: number; readonly bytes: number; readonly seconds: number }): void {
    this.batchesDelivered.inc();
    this.samplesDelivered.inc(batch.samples);
    this.bytesDelivered.inc(batch.bytes);
    this.deliveryLatency.observe(batch.seconds);
  }

  /** What the sender reports: the trainer's waits, and batches placed in shared memory. */
  onSenderEvent(event: SenderEvent): void {
    if (event.type === 'trainer-wait') this.trainerWait.inc(event.seconds);
  }

  /** A batch was placed in shared memory. */
  onShmBatch(): void {
    this.shmBatches.inc();
  }

  /** A batch was built in `seconds`, `stages` of them per step (as measured by the thread that built it). */
  onBatchBuilt(seconds: number, stages?: StageSeconds): void {
    this.batchBuild.observe(seconds);
    if (stages === undefined) return;
    for (const stage of ['decode', 'transform', 'collate', 'encode'] as const) this.buildStage.observe({ stage }, stages[stage]);
  }

  /** One S3 request attempt (pass it as the S3Source's `onRequest`). */
  onS3Request(event: S3RequestEvent): void {
    this.s3Requests.observe({ operation: event.operation }, event.seconds);
    if (event.outcome !== 'ok') this.s3Errors.inc({ operation: event.operation, outcome: event.outcome });
  }

  /** Reads the cache gauges from `cache` at each scrape (undefined: no cache, the gauges read 0). */
  watchCache(cache: (() => CacheUsage | undefined) | undefined): void {
    this.#cache = cache;
  }

  /** Reads the stage gauges from `stages` at each scrape (undefined: no pipeline, the gauges read 0). */
  watchStages(stages: (() => StageDepths | undefined) | undefined): void {
    this.#stages = stages;
  }

  /** Reads the window gauges from `window` at each scrape (undefined: no sender, the gauges read 0). */
  watchSender(window: (() => SenderWindow | undefined) | undefined): void {
    this.#window = window;
  }

  /** The exposition text, as `/metrics` serves it. */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}

/** Readiness checks by name: `/readyz` answers 200 when every one is true. */
export type ReadinessChecks = Readonly<Record<string, boolean>>;

/** Options of {@link startMetricsServer}. */
export interface MetricsServerOptions {
  readonly registry: Registry;
  /** TCP port; 0 picks a free one (default 9090). */
  readonly port?: number;
  /** Interface to listen on (default all, `0.0.0.0`, as a pod's probes need). */
  readonly host?: string;
  /** The readiness checks, read at each `/readyz` request. */
  readonly ready: () => ReadinessChecks;
}

/** A running metrics server. */
export interface MetricsServer {
  /** Base URL, e.g. `http://127.0.0.1:9090`. */
  readonly url: string;
  readonly port: number;
  /** Stops listening and ends open connections. Idempotent. */
  close(): Promise<void>;
}

/**
 * Serves `/metrics` (Prometheus text), `/healthz` (200 while the process runs) and `/readyz`
 * (200 or 503, with the checks as JSON). Other paths are 404, other methods 405.
 * @throws ArgumentError for a bad port; the listen error (EADDRINUSE…) when the port is taken.
 * @example
 * const server = await startMetricsServer({ registry: metrics.registry, port: 0, ready: () => ({ index: true, nats: !nc.isClosed() }) });
 * await fetch(`${server.url}/readyz`);
 */
export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const port = options.port ?? 9090;
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new ArgumentError('port', `must be an integer in [0, 65535], got ${port}`);
  const host = options.host ?? '0.0.0.0';
  const server: Server = createServer((request, response) => {
    void answer(options, request, response);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  let closed: Promise<void> | undefined;
  return {
    url: `http://${host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host}:${bound}`,
    port: bound,
    close: () =>
      (closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      })),
  };
}

async function answer(options: MetricsServerOptions, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const path = (request.url ?? '/').split('?')[0];
  const send = (status: number, type: string, body: string) => {
    response.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
    response.end(request.method === 'HEAD' ? undefined : body);
  };
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    send(405, 'text/plain; charset=utf-8', 'method not allowed\n');
    return;
  }
  try {
    switch (path) {
      case '/metrics':
        send(200, options.registry.contentType, await options.registry.metrics());
        return;
      case '/healthz':
        send(200, 'text/plain; charset=utf-8', 'ok\n');
        return;
      case '/readyz': {
        const checks = options.ready();
        const ready = Object.values(checks).every(Boolean);
        send(ready ? 200 : 503, 'application/json', `${JSON.stringify({ ready, checks })}\n`);
        return;
      }
      default:
        send(404, 'text/plain; charset=utf-8', 'not found: try /metrics, /healthz or /readyz\n');
    }
  } catch (error) {
    send(500, 'text/plain; charset=utf-8', `${(error as Error).message}\n`);
  }
}
