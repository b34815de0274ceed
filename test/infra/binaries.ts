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
export type ServerBinary = 'nats-server' | 'minio' | 'prometheus' | 'promtool' | 'helm' | 'kubectl';

// Each binary, the server folder it sits in, and the variable of the script that pins its version.
const LAYOUT = {
  'nats-server': { folder: 'nats-server', versionVar: 'NATS_SERVER_VERSION' },
  minio: { folder: 'minio', versionVar: 'MINIO_VERSION' },
  prometheus: { folder: 'prometheus', versionVar: 'PROMETHEUS_VERSION' },
  promtool: { folder: 'prometheus', versionVar: 'PROMETHEUS_VERSION' },
  helm: { folder: 'helm', versionVar: 'HELM_VERSION' },
  kubectl: { folder: 'kubectl', versionVar: 'KUBECTL_VERSION' },
} as const satisfies Record<ServerBinary, { folder: string; versionVar: string }>;

/** The cache root shared with the setup scripts. */
export function cacheDir(): string {
  return process.env.SHARDLINE_CACHE || path.join(homedir(), '.cache', 'shardline');
}

/** The version of `name` pinned in scripts/setup-servers.sh (read from the script so the two never disagree). */
export function pinnedVersion(name: ServerBinary): string {
  const variable = LAYOUT[name].versionVar;
  const script = readFileSync(SETUP_SCRIPT, 'utf8');
  const match = new RegExp(`^${variable}=([^\\s]+)$`, 'm').exec(script);
  if (match === null) throw new Error(`${SETUP_SCRIPT} has no ${variable}=... line; cannot locate ${name}`);
  return match[1]!;
}

/**
 * Absolute path of an installed server binary.
 * @throws Error naming `bash scripts/setup-servers.sh` when the binary is not installed.
 * @example
 * const nats = serverBinary('nats-server'); // ~/.cache/shardline/servers/nats-server-2.10.27/bin/nats-server
 */
export function serverBinary(name: ServerBinary): string {
  const version = pinnedVersion(name);
  const file = path.join(cacheDir(), 'servers', `${LAYOUT[name].folder}-${version}`, 'bin', name);
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
      `(it builds nats-server, MinIO, helm and kubectl with Go from the Go module proxy and installs Debian's prometheus package).`,
  );
  return Object.assign(error, { code: 'SERVER_MISSING' });
}
