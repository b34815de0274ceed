/**
 * A real Prometheus for tests: loopback, a free port, a fresh TSDB directory and a generated
 * scrape config for the given targets; `query()` runs PromQL over the HTTP API. Also `promtool`
 * (config checks). With SHARDLINE_TEST_PROMETHEUS_URL set, tests use that server instead.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { serverBinary } from './binaries.ts';
import { freePort, httpGet, makeTempDir, removeTempDir, spawnServer, type ManagedProcess } from './supervisor.ts';

/** Options of {@link startPrometheus}. */
export interface PrometheusOptions {
  /** Scrape targets as `host:port` (e.g. `127.0.0.1:9464`); may be empty. */
  targets: string[];
  /** Scrape (and rule evaluation) interval as a Prometheus duration (default `1s`). */
  scrapeInterval?: string;
  /** Path scraped on each target (default `/metrics`). */
  metricsPath?: string;
  /** Job label of the targets (default `shardline-test`). */
  job?: string;
  /** Use SHARDLINE_TEST_PROMETHEUS_URL when it is set (default true). */
  allowExternal?: boolean;
  readyTimeoutMs?: number;
}

/** One series of an instant-query result. */
export interface PromSample {
  metric: Record<string, string>;
  /** [unix seconds, value as Prometheus formats it] */
  value: [number, string];
}

/** The `data` of a successful `/api/v1/query` answer. */
export interface PromQueryData {
  resultType: 'vector' | 'matrix' | 'scalar' | 'string';
  result: unknown;
}

/** A Prometheus started (or, when `external`, found) for a test. */
export interface PrometheusServer {
  /** Base URL, e.g. `http://127.0.0.1:41234`. */
  readonly url: string;
  readonly external: boolean;
  /** The server's temp folder (config, TSDB, `server.log`); empty when external. */
  readonly dir: string;
  readonly configFile: string;
  readonly logFile: string;
  /** Runs an instant query; throws with Prometheus's error text on a bad query. */
  query(promql: string): Promise<PromQueryData>;
  /**
   * Runs an instant vector query until it returns at least one sample (and `accept` agrees), for
   * at most `timeoutMs` (default 15 s); resolves to the samples.
   */
  waitForSamples(promql: string, accept?: (samples: PromSample[]) => boolean, timeoutMs?: number): Promise<PromSample[]>;
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

const DURATION = /^(\d+(ms|s|m|h|d|w|y))+$/;
const TARGET = /^[^\s/]+:\d{1,5}$/;

/** The prometheus.yml text for the given options (JSON is valid YAML, and needs no YAML library). */
export function prometheusConfig(options: PrometheusOptions): string {
  validate(options);
  const interval = options.scrapeInterval ?? '1s';
  const config = {
    global: { scrape_interval: interval, evaluation_interval: interval, scrape_timeout: interval },
    scrape_configs: [
      {
        job_name: options.job ?? 'shardline-test',
        metrics_path: options.metricsPath ?? '/metrics',
        static_configs: [{ targets: options.targets }],
      },
    ],
  };
  return JSON.stringify(config, null, 2) + '\n';
}

function validate(options: PrometheusOptions): void {
  if (!Array.isArray(options?.targets)) throw new TypeError(`targets: must be an array of host:port, got ${JSON.stringify(options?.targets)}`);
  for (const [i, t] of options.targets.entries()) {
    if (typeof t !== 'string' || !TARGET.test(t)) throw new TypeError(`targets[${i}]: must be host:port, got ${JSON.stringify(t)}`);
  }
  if (options.scrapeInterval !== undefined && !DURATION.test(options.scrapeInterval)) {
    throw new TypeError(`scrapeInterval: must be a Prometheus duration like 1s or 500ms, got ${JSON.stringify(options.scrapeInterval)}`);
  }
  if (options.metricsPath !== undefined && !options.metricsPath.startsWith('/')) {
    throw new TypeError(`metricsPath: must start with /, got ${JSON.stringify(options.metricsPath)}`);
  }
}

/**
 * Starts Prometheus on loopback scraping `targets`, and waits until `/-/ready` answers.
 * @throws Error naming `bash scripts/setup-servers.sh` when Prometheus is not installed.
 * @example
 * const prom = await startPrometheus({ targets: [`127.0.0.1:${port}`] });
 * t.after(() => prom.stop());
 * const [sample] = await prom.waitForSamples('shardline_test_total');
 */
export async function startPrometheus(options: PrometheusOptions): Promise<PrometheusServer> {
  const text = prometheusConfig(options);
  const externalUrl = process.env.SHARDLINE_TEST_PROMETHEUS_URL;
  if ((options.allowExternal ?? true) && externalUrl !== undefined && externalUrl !== '') {
    return handle(externalUrl.replace(/\/+$/, ''), true, '', '', '', async () => {});
  }
  const binary = serverBinary('prometheus');
  const dir = makeTempDir('prometheus');
  const configFile = path.join(dir, 'prometheus.yml');
  writeFileSync(configFile, text);
  let proc: ManagedProcess | undefined;
  let port = 0;
  for (let attempt = 1; proc === undefined; attempt++) {
    port = await freePort();
    try {
      proc = await spawnServer({
        name: 'prometheus',
        command: binary,
        args: [
          `--config.file=${configFile}`,
          `--storage.tsdb.path=${path.join(dir, 'data')}`,
          `--web.listen-address=127.0.0.1:${port}`,
          '--log.level=info',
        ],
        dir,
        readyTimeoutMs: options.readyTimeoutMs,
        ready: async () => (await httpGet(`http://127.0.0.1:${port}/-/ready`)).ok,
      });
    } catch (error) {
      if (attempt >= 3 || !/address already in use/i.test(String(error))) {
        removeTempDir(dir);
        throw error;
      }
    }
  }
  let current: ManagedProcess | undefined = proc;
  return handle(`http://127.0.0.1:${port}`, false, dir, configFile, proc.logFile, async () => {
    if (current !== undefined) {
      const p = current;
      current = undefined;
      await p.stop();
      removeTempDir(dir);
    }
  });
}

function handle(url: string, external: boolean, dir: string, configFile: string, logFile: string, stop: () => Promise<void>): PrometheusServer {
  const query = async (promql: string): Promise<PromQueryData> => {
    const response = await httpGet(`${url}/api/v1/query?query=${encodeURIComponent(promql)}`, 5000);
    const body = (await response.json()) as { status: string; data?: PromQueryData; error?: string; errorType?: string };
    if (body.status !== 'success' || body.data === undefined) {
      throw new Error(`prometheus query ${JSON.stringify(promql)} failed: ${body.errorType ?? response.status}: ${body.error ?? ''}`);
    }
    return body.data;
  };
  return {
    url,
    external,
    dir,
    configFile,
    logFile,
    query,
    async waitForSamples(promql, accept = () => true, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      let last: unknown = [];
      for (;;) {
        const data = await query(promql);
        if (data.resultType !== 'vector') throw new Error(`prometheus query ${JSON.stringify(promql)}: expected a vector, got ${data.resultType}`);
        const samples = data.result as PromSample[];
        if (samples.length > 0 && accept(samples)) return samples;
        last = samples;
        if (Date.now() > deadline) {
          throw new Error(`prometheus query ${JSON.stringify(promql)} gave no accepted samples within ${timeoutMs} ms; last result: ${JSON.stringify(last)}` + (logFile === '' ? '' : `; log: ${logFile}`));
        }
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/** What a promtool run printed. */
export interface PromtoolResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `promtool` with `args` (e.g. `['check', 'rules', file]`) and returns its output; does not throw on a
 * non-zero exit. Throws naming the setup command when promtool is not installed.
 */
export function promtool(args: readonly string[]): PromtoolResult {
  const run = spawnSync(serverBinary('promtool'), args, { encoding: 'utf8', timeout: 60_000 });
  if (run.error !== undefined) throw new Error(`promtool ${args.join(' ')}: ${run.error.message}`);
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

/** `promtool check config FILE`; throws with promtool's output when the config is invalid. */
export function checkPrometheusConfig(file: string): void {
  const result = promtool(['check', 'config', file]);
  if (result.status !== 0) {
    throw new Error(`promtool check config ${file} failed (exit ${result.status}):\n${result.stdout}${result.stderr}`);
  }
}
