/**
 * A real nats-server (JetStream on by default) for tests: loopback, free ports, a fresh store
 * directory, a generated config with optional users and per-subject permissions, and restart()
 * on the same port and store so tests can watch clients reconnect and state survive.
 * With SHARDLINE_TEST_NATS_URL set, tests use that server instead of starting one.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after } from 'node:test';
import { connect, type ConnectionOptions, type NatsConnection } from 'nats';
import { serverBinary } from './binaries.ts';
import { freePort, httpGet, makeTempDir, removeTempDir, spawnServer, type ManagedProcess } from './supervisor.ts';

/** A user of the test server, with optional subject permissions (allow lists). */
export interface NatsUser {
  user: string;
  password: string;
  /** Subjects this user may publish to (wildcards allowed); all when omitted. */
  publish?: string[];
  /** Subjects this user may subscribe to (wildcards allowed); all when omitted. */
  subscribe?: string[];
}

/** Options of {@link startNats}. */
export interface NatsOptions {
  /** Enable JetStream with a file store in the server's temp dir (default true). */
  jetstream?: boolean;
  /** Users; when given, connections must authenticate as one of them. */
  users?: NatsUser[];
  /**
   * Use SHARDLINE_TEST_NATS_URL when it is set (default true). Tests that need to configure or
   * restart the server themselves pass false.
   */
  allowExternal?: boolean;
  /** How long to wait for readiness (default 20 s). */
  readyTimeoutMs?: number;
  /**
   * Bytes the server buffers for one client before cutting it as a slow consumer, e.g. `256MB`
   * (default: nats-server's own, 64 MB). Delivery of large batches needs it above the loader's
   * bytes in flight plus a batch.
   */
  maxPending?: string;
}

/** A nats-server started (or, when `external`, found) for a test. */
export interface NatsServer {
  /** Client URL, e.g. `nats://127.0.0.1:41234`. */
  readonly url: string;
  readonly port: number;
  /** True when this is the server named by SHARDLINE_TEST_NATS_URL (not started or stopped here). */
  readonly external: boolean;
  /** Monitoring endpoint (`/varz`, `/jsz`, `/healthz`); empty for an external server. */
  readonly monitorUrl: string;
  /** The server's temp folder (config, JetStream store, `server.log`); empty when external. */
  readonly dir: string;
  readonly configFile: string;
  readonly logFile: string;
  readonly users: readonly NatsUser[];
  /** Stops the server and starts it again on the same port with the same store. */
  restart(): Promise<void>;
  /** Stops the server and removes its folder (kept with SHARDLINE_TEST_KEEP=1). Idempotent. */
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

const SUBJECT = /^[^\s]+$/;

function validate(options: NatsOptions): void {
  const users = options.users;
  if (users === undefined) return;
  if (!Array.isArray(users)) throw new TypeError(`users: must be an array, got ${typeof users}`);
  const seen = new Set<string>();
  for (const [i, u] of users.entries()) {
    if (typeof u?.user !== 'string' || u.user === '') throw new TypeError(`users[${i}].user: must be a non-empty string, got ${JSON.stringify(u?.user)}`);
    if (typeof u.password !== 'string' || u.password === '') throw new TypeError(`users[${i}].password: must be a non-empty string`);
    if (seen.has(u.user)) throw new TypeError(`users[${i}].user: duplicate user ${JSON.stringify(u.user)}`);
    seen.add(u.user);
    for (const key of ['publish', 'subscribe'] as const) {
      const list = u[key];
      if (list === undefined) continue;
      if (!Array.isArray(list) || list.some((s) => typeof s !== 'string' || !SUBJECT.test(s))) {
        throw new TypeError(`users[${i}].${key}: must be an array of subjects without spaces, got ${JSON.stringify(list)}`);
      }
    }
  }
}

// Strings are written JSON-quoted, which the NATS config parser reads as quoted strings.
const q = (s: string): string => JSON.stringify(s);

/** The nats-server config text for the given ports, store directory and options. */
export function natsConfig(port: number, monitorPort: number, storeDir: string, options: NatsOptions): string {
  const lines = [
    `server_name: "shardline-test-${port}"`,
    `listen: "127.0.0.1:${port}"`,
    `http: "127.0.0.1:${monitorPort}"`,
    // Tests move batches of several MB (ARCHITECTURE: 8 MB is the advised ceiling).
    'max_payload: 8MB',
  ];
  if (options.maxPending !== undefined) {
    if (!/^\d+(KB|MB|GB)?$/.test(options.maxPending)) throw new Error(`maxPending must be like 256MB, got ${JSON.stringify(options.maxPending)}`);
    lines.push(`max_pending: ${options.maxPending}`);
  }
  if (options.jetstream ?? true) {
    lines.push(`jetstream { store_dir: ${q(storeDir)}, max_memory_store: 256MB, max_file_store: 1GB }`);
  }
  if (options.users !== undefined && options.users.length > 0) {
    lines.push('authorization {', '  users: [');
    for (const u of options.users) {
      const perms: string[] = [];
      if (u.publish !== undefined) perms.push(`publish: { allow: [${u.publish.map(q).join(', ')}] }`);
      if (u.subscribe !== undefined) perms.push(`subscribe: { allow: [${u.subscribe.map(q).join(', ')}] }`);
      const permissions = perms.length > 0 ? `, permissions: { ${perms.join(', ')} }` : '';
      lines.push(`    { user: ${q(u.user)}, password: ${q(u.password)}${permissions} }`);
    }
    lines.push('  ]', '}');
  }
  return lines.join('\n') + '\n';
}

/**
 * Starts a nats-server on loopback (JetStream on unless `jetstream: false`) and waits until
 * `/healthz` reports it ready.
 * @throws Error naming `bash scripts/setup-servers.sh` when nats-server is not installed, or
 * with the server's last output when it does not become ready.
 * @example
 * const nats = await startNats({ users: [{ user: 'a', password: 'pw', subscribe: ['a.>'] }] });
 * t.after(() => nats.stop());
 * const nc = await connect({ servers: nats.url, user: 'a', pass: 'pw' });
 */
export async function startNats(options: NatsOptions = {}): Promise<NatsServer> {
  validate(options);
  const externalUrl = process.env.SHARDLINE_TEST_NATS_URL;
  if ((options.allowExternal ?? true) && externalUrl !== undefined && externalUrl !== '') {
    return externalNats(externalUrl, options.users ?? []);
  }
  const binary = serverBinary('nats-server');
  const dir = makeTempDir('nats');
  const storeDir = path.join(dir, 'jetstream');
  mkdirSync(storeDir);
  const configFile = path.join(dir, 'nats.conf');
  const users = options.users ?? [];

  let port = 0;
  let monitorPort = 0;
  const launch = (): Promise<ManagedProcess> =>
    spawnServer({
      name: 'nats-server',
      command: binary,
      args: ['--config', configFile],
      dir,
      readyTimeoutMs: options.readyTimeoutMs,
      ready: async () => (await httpGet(`http://127.0.0.1:${monitorPort}/healthz`)).ok,
    });

  let proc: ManagedProcess | undefined;
  // The ports are free when asked for but may be taken before the server binds: retry then.
  for (let attempt = 1; proc === undefined; attempt++) {
    port = await freePort();
    monitorPort = await freePort();
    writeFileSync(configFile, natsConfig(port, monitorPort, storeDir, options));
    try {
      proc = await launch();
    } catch (error) {
      if (attempt >= 3 || !/address already in use/i.test(String(error))) {
        removeTempDir(dir);
        throw error;
      }
    }
  }

  let current: ManagedProcess | undefined = proc;
  const stop = async (): Promise<void> => {
    if (current !== undefined) {
      const p = current;
      current = undefined;
      await p.stop();
      removeTempDir(dir);
    }
  };
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    external: false,
    monitorUrl: `http://127.0.0.1:${monitorPort}`,
    dir,
    configFile,
    logFile: proc.logFile,
    users,
    async restart() {
      if (current === undefined) throw new Error('nats-server: restart() after stop()');
      await current.stop();
      current = await launch();
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

function externalNats(url: string, users: readonly NatsUser[]): NatsServer {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError(`SHARDLINE_TEST_NATS_URL: must be a URL like nats://127.0.0.1:4222, got ${JSON.stringify(url)}`);
  }
  const stop = async (): Promise<void> => {};
  return {
    url,
    port: Number(parsed.port || 4222),
    external: true,
    monitorUrl: '',
    dir: '',
    configFile: '',
    logFile: '',
    users,
    restart() {
      return Promise.reject(
        new Error(
          'nats-server: cannot restart the external server named by SHARDLINE_TEST_NATS_URL; ' +
            'this test needs its own server (startNats({ allowExternal: false }))',
        ),
      );
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/**
 * The nats-server of one test file: started on first use, stopped after the file's tests (with
 * `node:test`'s `after`). JetStream is off unless the options say otherwise.
 * @example
 * const nats = natsPerFile();
 * test('…', async (t) => { const nc = await connectFor(t, await nats()); … });
 */
export function natsPerFile(options: NatsOptions = { jetstream: false }): () => Promise<NatsServer> {
  let server: Promise<NatsServer> | undefined;
  after(async () => {
    if (server !== undefined) await (await server).stop();
  });
  return () => (server ??= startNats(options));
}

/** A connection to `server` for one test; it closes when the test ends (if still open). */
export async function connectFor(t: { after: (fn: () => unknown) => void }, server: NatsServer, options: ConnectionOptions = {}): Promise<NatsConnection> {
  const nc = await connect({ servers: server.url, ...options });
  t.after(() => (nc.isClosed() ? undefined : nc.close()));
  return nc;
}
