/**
 * helm and kubectl for tests: the binaries that scripts/setup-servers.sh builds from Go modules,
 * run with their state (helm's cache, config and data folders) kept in a temporary folder, so a
 * test never reads or writes the developer's ~/.config/helm or ~/.kube.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT, serverBinary, setupVariable } from './binaries.ts';
import { makeTempDir } from './supervisor.ts';

/** The tiny chart (a Deployment and a Service) that the helm smoke test lints and renders. */
export const TINY_CHART = path.join(import.meta.dirname, 'fixtures', 'tiny-chart');

/** What a helm or kubectl run printed. */
export interface ToolResult {
  /** Exit code (null when killed by a signal or the timeout). */
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Options of {@link helm} and {@link kubectl}. */
export interface ToolOptions {
  /** Extra environment (on top of the isolated one). */
  env?: NodeJS.ProcessEnv;
  /** Working directory (default: the repository root). */
  cwd?: string;
  /** Kill the tool after this long (default 60 s). */
  timeoutMs?: number;
}

/** Options of {@link helmTemplate} and {@link helmLint}. */
export interface ChartOptions {
  /** Values merged over the chart's values.yaml (written to a values file as JSON, which YAML reads). */
  values?: Record<string, unknown>;
  /** Release name (default `test`). */
  releaseName?: string;
  /** Namespace (default `default`). */
  namespace?: string;
}

let isolatedHome: string | undefined;
// One folder per test process for helm's XDG homes and kubectl's cache: created on first use,
// removed on exit by the supervisor.
function toolEnv(extra: NodeJS.ProcessEnv | undefined): NodeJS.ProcessEnv {
  isolatedHome ??= makeTempDir('helm');
  return {
    ...process.env,
    HELM_CACHE_HOME: path.join(isolatedHome, 'cache'),
    HELM_CONFIG_HOME: path.join(isolatedHome, 'config'),
    HELM_DATA_HOME: path.join(isolatedHome, 'data'),
    KUBECACHEDIR: path.join(isolatedHome, 'kube-cache'),
    // A kubeconfig that does not exist: a test must pass its own (--kubeconfig or env) to reach a cluster.
    KUBECONFIG: path.join(isolatedHome, 'no-kubeconfig'),
    ...extra,
  };
}

function run(name: 'helm' | 'kubectl', args: readonly string[], options: ToolOptions = {}): ToolResult {
  if (!Array.isArray(args) || args.some((a) => typeof a !== 'string')) {
    throw new TypeError(`args: must be an array of strings, got ${JSON.stringify(args)}`);
  }
  const result = spawnSync(serverBinary(name), args, {
    cwd: options.cwd ?? REPO_ROOT,
    env: toolEnv(options.env),
    encoding: 'utf8',
    timeout: options.timeoutMs ?? 60_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.error !== undefined) throw new Error(`${name} ${args.join(' ')}: ${result.error.message}`);
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/**
 * Runs the pinned helm (`helm-<version>/bin/helm` in the cache) with isolated helm homes.
 * @throws Error naming `bash scripts/setup-servers.sh` when helm is not installed.
 * @example
 * const { stdout } = helm(['version', '--template', '{{.Version}}']); // 'v3.22.0'
 */
export function helm(args: readonly string[], options?: ToolOptions): ToolResult {
  return run('helm', args, options);
}

/**
 * Runs the pinned kubectl (built with the control plane from k8s.io/kubernetes by the setup script). Pass `--kubeconfig`
 * or `env: { KUBECONFIG }`; without one it reaches no cluster.
 * @example
 * kubectl(['--kubeconfig', k8s.kubeconfig, 'get', 'crd']);
 */
export function kubectl(args: readonly string[], options?: ToolOptions): ToolResult {
  return run('kubectl', args, options);
}

/** The Kubernetes version helm was built to report (HELM_KUBE_VERSION in scripts/setup-servers.sh), e.g. `1.35`. */
export function helmKubeVersion(): string {
  return setupVariable('HELM_KUBE_VERSION');
}

function chartArgs(chartDir: string, options: ChartOptions): string[] {
  if (typeof chartDir !== 'string' || chartDir === '') {
    throw new TypeError(`chartDir: must be a non-empty path, got ${JSON.stringify(chartDir)}`);
  }
  const args: string[] = [];
  if (options.values !== undefined) {
    if (typeof options.values !== 'object' || options.values === null || Array.isArray(options.values)) {
      throw new TypeError(`values: must be an object, got ${JSON.stringify(options.values)}`);
    }
    const file = path.join(makeTempDir('helm-values'), 'values.json');
    writeFileSync(file, JSON.stringify(options.values));
    args.push('--values', file);
  }
  args.push('--namespace', options.namespace ?? 'default');
  return args;
}

function check(what: string, result: ToolResult): string {
  if (result.status !== 0) {
    throw new Error(`${what} failed (exit ${result.status}):\n${result.stdout}${result.stderr}`);
  }
  return result.stdout;
}

/**
 * `helm template` of a chart folder; resolves to the rendered manifests (multi-document YAML).
 * @throws Error with helm's output when rendering fails.
 * @example
 * const yaml = helmTemplate(TINY_CHART, { values: { greeting: 'hi' } });
 */
export function helmTemplate(chartDir: string, options: ChartOptions = {}): string {
  const release = options.releaseName ?? 'test';
  const args = ['template', release, chartDir, ...chartArgs(chartDir, options)];
  return check(`helm ${args.join(' ')}`, helm(args));
}

/**
 * `helm lint --strict` of a chart folder; returns helm's report.
 * @throws Error with helm's report when the chart has errors (or, with --strict, warnings).
 */
export function helmLint(chartDir: string, options: ChartOptions = {}): string {
  const args = ['lint', '--strict', chartDir, ...chartArgs(chartDir, options)];
  return check(`helm ${args.join(' ')}`, helm(args));
}
