/**
 * `shardline loader`: one rank's loader process in standalone mode. Opens the dataset's store
 * (local directory or S3), connects to NATS, serves `/metrics`, `/healthz` and `/readyz`, and
 * runs the loader pipeline until every epoch was acked by the trainer or the signal (SIGTERM)
 * stops it; then closes everything it opened, in reverse order.
 */
import { readFile } from 'node:fs/promises';
import { ArgumentError } from '@shardline/core';
import { connect, credsAuthenticator, type NatsConnection } from 'nats';
import { LoaderMetrics, runLoader, startMetricsServer, type LoaderEvent, type LoaderSummary, type MetricsServer } from '@shardline/loader-node';
import type { LoaderConfig } from '../config.ts';
import type { Logger } from '../log.ts';
import { openDatasetSource } from './dataset-source.ts';

/**
 * Runs the loader described by `config` until it is done or `signal` aborts.
 * @throws ArgumentError naming `--nats-creds` or `--nats-url` when they do not work; the
 *   loader's errors (bad dataset, store failures) after closing what was opened.
 */
export async function runLoaderCommand(config: LoaderConfig, log: Logger, signal: AbortSignal): Promise<LoaderSummary> {
  const { job, namespace, rank } = config;
  log.info({ event: 'loader.start', job, namespace, rank, worldSize: config.worldSize, dataset: datasetName(config) }, 'loader starting');
  const metrics = new LoaderMetrics({ labels: { namespace, job, rank: String(rank) } });
  let indexRead = false;
  let nc: NatsConnection | undefined;
  let natsUp = false;
  const server: MetricsServer = await startMetricsServer({
    registry: metrics.registry,
    port: config.metricsPort,
    ready: () => ({ datasetIndex: indexRead, nats: natsUp }),
  });
  log.info({ event: 'loader.metrics', url: server.url }, 'serving /metrics, /healthz and /readyz');
  const source = await openDatasetSource(config.dataset, config.s3, (event) => metrics.onS3Request(event));
  try {
    nc = await connectNats(config);
    natsUp = true;
    void watchNats(nc, log, (up) => (natsUp = up));
    const summary = await runLoader(
      {
        namespace,
        job,
        rank,
        worldSize: config.worldSize,
        batchSize: config.batchSize,
        epochs: config.epochs,
        seed: config.seed,
        shuffle: config.shuffle,
        cacheDir: config.cacheDir,
        cacheBudgetBytes: config.cacheBudgetBytes,
        workers: config.workers,
        firstEpoch: config.firstEpoch,
        firstStep: config.firstStep,
        shm: config.shmDir === false ? false : { directory: config.shmDir },
        ...(config.hostId === undefined ? {} : { hostId: config.hostId }),
        ...(config.maxHeldBytes === undefined ? {} : { maxHeldBytes: config.maxHeldBytes }),
      },
      {
        source,
        nc,
        metrics,
        signal,
        onEvent: (event) => {
          if (event.type === 'dataset-opened') indexRead = true;
          logEvent(log, event);
        },
      },
    );
    log.info({ event: 'loader.done', ...summary }, summary.aborted ? 'loader stopped' : 'loader finished: every epoch acked');
    return summary;
  } finally {
    natsUp = false;
    await nc?.drain().catch(() => nc?.close());
    await source.close();
    await server.close();
  }
}

async function connectNats(config: LoaderConfig): Promise<NatsConnection> {
  let authenticator;
  if (config.natsCreds !== undefined) {
    try {
      authenticator = credsAuthenticator(new Uint8Array(await readFile(config.natsCreds)));
    } catch (error) {
      throw new ArgumentError('--nats-creds', `cannot read ${config.natsCreds}: ${(error as Error).message}`, { cause: error });
    }
  }
  try {
    return await connect({ servers: [...config.natsUrls], name: `shardline-loader-${config.job}-${config.rank}`, maxReconnectAttempts: -1, ...(authenticator === undefined ? {} : { authenticator }) });
  } catch (error) {
    throw new ArgumentError('--nats-url', `cannot connect to ${config.natsUrls.join(', ')}: ${(error as Error).message}`, { cause: error });
  }
}

/** Follows the connection's status for /readyz and the log. */
async function watchNats(nc: NatsConnection, log: Logger, set: (up: boolean) => void): Promise<void> {
  for await (const status of nc.status()) {
    if (status.type === 'disconnect') set(false);
    if (status.type === 'reconnect') set(true);
    if (status.type === 'disconnect' || status.type === 'reconnect' || status.type === 'error') log.warn({ event: 'loader.nats', status: status.type, data: String(status.data) }, `NATS ${status.type}`);
  }
}

/** One log line for a loader event (acks at debug, trouble at warn). */
export function logEvent(log: Logger, event: LoaderEvent): void {
  if (event.type === 'delivery') {
    const e = event.event;
    // Acks come once per batch: debug. Sessions, refusals and protocol trouble: info and above.
    if (e.type === 'batch-acked' || e.type === 'epoch-acked' || e.type === 'credit-clamped' || e.type === 'trainer-wait') log.debug({ event: `delivery.${e.type}`, ...e }, e.type);
    else if (e.type === 'malformed' || e.type === 'transport-error' || e.type === 'refused' || e.type === 'shm-unavailable') log.warn({ event: `delivery.${e.type}`, ...e }, e.type);
    else log.info({ event: `delivery.${e.type}`, ...e }, e.type);
    return;
  }
  if (event.type === 'cache-too-small') {
    const mb = (bytes: number): string => `${(bytes / 1e6).toFixed(0)} MB`;
    const hint = event.shuffle === 'global' ? "use --shuffle shard-aware (a batch of a global shuffle reads from many shards) or a budget that holds the dataset" : 'raise --cache-budget';
    log.warn({ event: `loader.${event.type}`, ...event }, `the batches built at once read up to ${mb(event.workingSetBytes)} of shards and the cache holds ${mb(event.budgetBytes)}: shards will be fetched more than once; ${hint}`);
    return;
  }
  const level = event.type === 'fields-skipped' ? 'warn' : 'info';
  const message = event.type === 'fields-skipped' ? `fields that are not tensors stay off the wire: ${event.fields.join(', ')}` : event.type;
  log[level]({ event: `loader.${event.type}`, ...event }, message);
}

function datasetName(config: LoaderConfig): string {
  return config.dataset.type === 'local' ? config.dataset.path : config.dataset.url;
}
