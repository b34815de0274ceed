/**
 * Where the test servers' binaries live: the per-version folders that scripts/setup-servers.sh
 * fills under `${SHARDLINE_CACHE:-$HOME/.cache/shardline}/servers/`. A missing binary is an
 * error that names the setup command — tests never skip because a server is absent.
 */
import { accessSync, constants, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';

/** The repository root (this file is test/infra/binaries.ts). */
export const REPO_ROOT = path.resolve(import.meta.dirname, '..', '..');
/** The command that installs every test server. */
export const SETUP_COMMAND = 'bash scripts/setup-servers.sh';
const SETUP_SCRIPT = path.join(REPO_ROOT, 'scripts', 'setup-servers.sh');

/** Names of the binaries that scripts/setup-servers.sh provides. */
export type ServerBinary =
  | 'nats-server'
  | 'minio'
  | 'prometheus'
  | 'promtool'
  | 'helm'
  | 'etcd'
  | 'kube-apiserver'
  | 'kube-controller-manager'
  | 'kube-scheduler'
  | 'kubectl'
  | 'kwok';

// Each binary, the server folder it sits in, and the variable of the script that pins its version.
const LAYOUT = {
  'nats-server': { folder: 'nats-server', versionVar: 'NATS_SERVER_VERSION' },
  minio: { folder: 'minio', versionVar: 'MINIO_VERSION' },
  prometheus: { folder: 'prometheus', versionVar: 'PROMETHEUS_VERSION' },
  promtool: { folder: 'prometheus', versionVar: 'PROMETHEUS_VERSION' },
  // helm's folder also names the Kubernetes version stamped into it, so changing that rebuilds it.
  helm: { folder: 'helm', versionVar: 'HELM_VERSION', kubeSuffix: true },
  etcd: { folder: 'etcd', versionVar: 'ETCD_VERSION' },
  // One Kubernetes build gives the control plane and kubectl.
  'kube-apiserver': { folder: 'kubernetes', versionVar: 'KUBERNETES_VERSION' },
  'kube-controller-manager': { folder: 'kubernetes', versionVar: 'KUBERNETES_VERSION' },
  'kube-scheduler': { folder: 'kubernetes', versionVar: 'KUBERNETES_VERSION' },
  kubectl: { folder: 'kubernetes', versionVar: 'KUBERNETES_VERSION' },
  kwok: { folder: 'kwok', versionVar: 'KWOK_VERSION' },
} as const satisfies Record<ServerBinary, { folder: string; versionVar: string; kubeSuffix?: boolean }>;

/** The cache root shared with the setup scripts. */
export function cacheDir(): string {
  return process.env.SHARDLINE_CACHE || path.join(homedir(), '.cache', 'shardline');
}

/** The value of a `NAME=value` line of scripts/setup-servers.sh (read from the script so the two never disagree). */
export function setupVariable(variable: string): string {
  const script = readFileSync(SETUP_SCRIPT, 'utf8');
  const match = new RegExp(`^${variable}=([^\\s]+)$`, 'm').exec(script);
  if (match === null) throw new Error(`${SETUP_SCRIPT} has no ${variable}=... line`);
  return match[1]!;
}

/** The version of `name` pinned in scripts/setup-servers.sh. */
export function pinnedVersion(name: ServerBinary): string {
  return setupVariable(LAYOUT[name].versionVar);
}

/**
 * Absolute path of an installed server binary.
 * @throws Error naming `bash scripts/setup-servers.sh` when the binary is not installed.
 * @example
 * const nats = serverBinary('nats-server'); // ~/.cache/shardline/servers/nats-server-2.10.27/bin/nats-server
 */
export function serverBinary(name: ServerBinary): string {
  const version = pinnedVersion(name);
  const entry: { folder: string; kubeSuffix?: boolean } = LAYOUT[name];
  const key = entry.kubeSuffix === true ? `${version}-kube${setupVariable('HELM_KUBE_VERSION')}` : version;
  const file = path.join(cacheDir(), 'servers', `${entry.folder}-${key}`, 'bin', name);
  try {
    accessSync(file, constants.X_OK);
  } catch {
    throw missingServerError(name, version, file);
  }
  return file;
}

/** The error for a server binary that is not installed; the same advice in CI and for a developer. */
export function missingServerError(name: string, version: string, looked: string): Error {
  const where = process.env.CI === 'true' ? 'CI (CI=true) cannot run this test: ' : '';
  const error = new Error(
    `${where}${name} ${version} is not installed (looked for ${looked}). ` +
      `Run \`${SETUP_COMMAND}\` in ${REPO_ROOT} to install the test servers into ${path.join(cacheDir(), 'servers')} ` +
      `(it builds nats-server, MinIO, helm, etcd, Kubernetes and kwok with Go from the Go module proxy and installs Debian's prometheus package).`,
  );
  return Object.assign(error, { code: 'SERVER_MISSING' });
}
