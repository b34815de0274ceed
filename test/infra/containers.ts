/**
 * A container engine for testcontainers on machines without Docker: Debian's podman (with runc and
 * the project's containers.conf from scripts/setup-containers.sh) serving the Docker API on a
 * private unix socket, started under the test supervisor. Images cannot be pulled here, so tests
 * run the local base image that the setup script builds (`baseImage()`).
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { request } from 'node:http';
import path from 'node:path';
import { REPO_ROOT, cacheDir } from './binaries.ts';
import { makeTempDir, removeTempDir, spawnServer } from './supervisor.ts';

/** The command that installs podman and builds the base image. */
export const CONTAINERS_SETUP_COMMAND = 'bash scripts/setup-containers.sh';

/** A Docker-API endpoint for testcontainers; from {@link startContainerEngine}. */
export interface ContainerEngine {
  /** `unix:///…/podman.sock` (also put in `process.env.DOCKER_HOST` while the engine runs). */
  dockerHost: string;
  /** The socket's path. */
  socketPath: string;
  /** The containers.conf podman runs with (CONTAINERS_CONF). */
  containersConf: string;
  /** `shardline-base:<key>`: the local image with Debian and Node 24 at /usr/local/bin/node. */
  baseImage: string;
  /** True when the engine came from SHARDLINE_TEST_DOCKER_HOST (then `stop()` leaves it running). */
  external: boolean;
  /** podman's log (`podman system service` output); empty for an external engine. */
  logFile: string;
  /** Runs the podman CLI with the same containers.conf (e.g. `['ps', '-a']`). */
  podman(args: readonly string[]): { status: number | null; stdout: string; stderr: string };
  /** Stops the service and restores the environment variables it set. Safe to call twice. */
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

function missing(what: string, looked: string): Error {
  const where = process.env.CI === 'true' ? 'CI (CI=true) cannot run this test: ' : '';
  return Object.assign(
    new Error(
      `${where}${what} is not set up (looked for ${looked}). Run \`${CONTAINERS_SETUP_COMMAND}\` in ${REPO_ROOT} ` +
        `(it installs Debian's podman, runc and debootstrap and builds the local base image).`,
    ),
    { code: 'SERVER_MISSING' },
  );
}

/** The project's containers.conf written by scripts/setup-containers.sh (runc, no default ulimits). */
export function containersConf(): string {
  const file = path.join(cacheDir(), 'containers', 'containers.conf');
  try {
    accessSync(file, constants.R_OK);
  } catch {
    throw missing('the container engine configuration', file);
  }
  return file;
}

/** The `name:tag` of the local base image that scripts/setup-containers.sh built last. */
export function baseImage(): string {
  const file = path.join(cacheDir(), 'containers', 'base-image');
  let image: string;
  try {
    image = readFileSync(file, 'utf8').trim();
  } catch {
    throw missing('the base image shardline-base', file);
  }
  return image;
}

function podmanBinary(): string {
  for (const candidate of ['/usr/bin/podman', '/usr/local/bin/podman']) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // try the next one
    }
  }
  throw missing('podman', '/usr/bin/podman');
}

// GET /_ping over the unix socket: the Docker API's liveness probe, answered "OK".
function ping(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: '/_ping', timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

const ENGINE_ENV = ['DOCKER_HOST', 'TESTCONTAINERS_RYUK_DISABLED', 'CONTAINERS_CONF'] as const;

/** Options of {@link startContainerEngine}. */
export interface ContainerEngineOptions {
  /** Use SHARDLINE_TEST_DOCKER_HOST when it is set (default true). */
  allowExternal?: boolean;
  /** How long to wait for the socket (default 30 s). */
  readyTimeoutMs?: number;
}

/**
 * Starts `podman system service --time=0 unix://<tmp>/podman.sock` with the project's
 * containers.conf and points testcontainers at it: sets `DOCKER_HOST`,
 * `TESTCONTAINERS_RYUK_DISABLED=true` (Ryuk's image cannot be pulled; the supervisor and `stop()`
 * clean up instead) and `CONTAINERS_CONF` until `stop()`. testcontainers caches its engine per
 * process, so start one engine per test file (in `before`) and stop it in `after`.
 * @throws Error naming `bash scripts/setup-containers.sh` when podman or the base image is missing.
 * @example
 * const engine = await startContainerEngine();
 * after(() => engine.stop());
 * const c = await new GenericContainer(engine.baseImage).withCommand(['node', '-e', '…']).start();
 */
export async function startContainerEngine(options: ContainerEngineOptions = {}): Promise<ContainerEngine> {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`options: must be an object, got ${JSON.stringify(options)}`);
  }
  const conf = containersConf();
  const image = baseImage();
  const podman = podmanBinary();
  const saved = new Map(ENGINE_ENV.map((name) => [name, process.env[name]] as const));
  const restore = (): void => {
    for (const [name, value] of saved) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  };
  const podmanCli = (args: readonly string[]): { status: number | null; stdout: string; stderr: string } => {
    const run = spawnSync(podman, args, {
      env: { ...process.env, CONTAINERS_CONF: conf },
      encoding: 'utf8',
      timeout: 60_000,
    });
    if (run.error !== undefined) throw new Error(`podman ${args.join(' ')}: ${run.error.message}`);
    return { status: run.status, stdout: run.stdout, stderr: run.stderr };
  };

  const externalHost = process.env.SHARDLINE_TEST_DOCKER_HOST;
  if ((options.allowExternal ?? true) && externalHost !== undefined && externalHost !== '') {
    Object.assign(process.env, { DOCKER_HOST: externalHost, TESTCONTAINERS_RYUK_DISABLED: 'true', CONTAINERS_CONF: conf });
    const engine: ContainerEngine = {
      dockerHost: externalHost,
      socketPath: externalHost.replace(/^unix:\/\//, ''),
      containersConf: conf,
      baseImage: image,
      external: true,
      logFile: '',
      podman: podmanCli,
      stop: async () => restore(),
      [Symbol.asyncDispose]: () => engine.stop(),
    };
    return engine;
  }

  const dir = makeTempDir('podman');
  const socketPath = path.join(dir, 'podman.sock');
  const proc = await spawnServer({
    name: 'podman system service',
    command: podman,
    args: ['system', 'service', '--time=0', `unix://${socketPath}`],
    dir,
    env: { ...process.env, CONTAINERS_CONF: conf },
    ready: () => ping(socketPath),
    readyTimeoutMs: options.readyTimeoutMs ?? 30_000,
  }).catch((error: unknown) => {
    removeTempDir(dir);
    throw error;
  });
  const dockerHost = `unix://${socketPath}`;
  Object.assign(process.env, { DOCKER_HOST: dockerHost, TESTCONTAINERS_RYUK_DISABLED: 'true', CONTAINERS_CONF: conf });
  let stopped: Promise<void> | undefined;
  const engine: ContainerEngine = {
    dockerHost,
    socketPath,
    containersConf: conf,
    baseImage: image,
    external: false,
    logFile: proc.logFile,
    podman: podmanCli,
    stop: () =>
      (stopped ??= (async () => {
        restore();
        await proc.stop();
        removeTempDir(dir);
      })()),
    [Symbol.asyncDispose]: () => engine.stop(),
  };
  return engine;
}
