/**
 * A real S3 for tests: MinIO (built from Go modules by scripts/setup-servers.sh) on loopback with
 * free API and console ports, a fresh data directory and root credentials; `createBucket()` gives
 * each test its own bucket and `client()` an `@aws-sdk/client-s3` client for it.
 * With SHARDLINE_TEST_S3_URL (and its credential variables) set, tests use that server instead.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import { serverBinary } from './binaries.ts';
import { freePort, httpGet, makeTempDir, removeTempDir, spawnServer, type ManagedProcess } from './supervisor.ts';

/** Options of {@link startS3}. */
export interface S3Options {
  /**
   * Use SHARDLINE_TEST_S3_URL when it is set (default true). Tests that need their own server
   * (e.g. to stop it mid-test) pass false.
   */
  allowExternal?: boolean;
  /** How long to wait for readiness (default 30 s: MinIO formats its drive on first start). */
  readyTimeoutMs?: number;
}

/** An S3 server started (or, when `external`, found) for a test. */
export interface S3Server {
  /** API endpoint, e.g. `http://127.0.0.1:41234`; use path-style addressing. */
  readonly endpoint: string;
  readonly region: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** True when this is the server named by SHARDLINE_TEST_S3_URL (not started or stopped here). */
  readonly external: boolean;
  /** MinIO's web console; empty for an external server. */
  readonly consoleUrl: string;
  /** The server's temp folder (`data/`, `certs/`, `server.log`); empty when external. */
  readonly dir: string;
  readonly dataDir: string;
  readonly logFile: string;
  /** The server's process id; 0 when external. */
  readonly pid: number;
  /**
   * Creates a bucket and resolves to its name: `name` when given, else a fresh unique name
   * (`shardline-test-…`), so every test gets its own bucket even on a shared external server.
   */
  createBucket(name?: string): Promise<string>;
  /** A new S3Client for this server (path-style); destroyed by stop(). */
  client(): S3Client;
  /**
   * Stops the server and removes its folder (kept with SHARDLINE_TEST_KEEP=1). For an external
   * server it only empties and deletes the buckets made by createBucket(). Idempotent.
   */
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** The environment variables that name an external S3 server. */
export const S3_ENV = {
  url: 'SHARDLINE_TEST_S3_URL',
  accessKeyId: 'SHARDLINE_TEST_S3_ACCESS_KEY_ID',
  secretAccessKey: 'SHARDLINE_TEST_S3_SECRET_ACCESS_KEY',
  region: 'SHARDLINE_TEST_S3_REGION',
} as const;

const DEFAULT_REGION = 'us-east-1';
const ROOT_USER = 'shardline';
const ROOT_PASSWORD = 'shardline-test-secret';
// S3's bucket naming rules (lowercase letters, digits, dots, hyphens; 3–63 characters).
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

let bucketCounter = 0;
// Unique across test files that share an external server: the process id, the start time and a counter.
function uniqueBucketName(): string {
  bucketCounter += 1;
  return `shardline-test-${process.pid}-${Date.now().toString(36)}-${bucketCounter}`;
}

interface Connection {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
}

// The bucket and client bookkeeping shared by started and external servers.
function clients(connection: Connection): {
  createBucket(name?: string): Promise<string>;
  client(): S3Client;
  buckets: string[];
  destroy(): void;
} {
  const made: S3Client[] = [];
  const buckets: string[] = [];
  const client = (): S3Client => {
    const c = new S3Client({
      endpoint: connection.endpoint,
      region: connection.region,
      credentials: { accessKeyId: connection.accessKeyId, secretAccessKey: connection.secretAccessKey },
      forcePathStyle: true,
    });
    made.push(c);
    return c;
  };
  let admin: S3Client | undefined;
  return {
    client,
    buckets,
    async createBucket(name?: string) {
      if (name !== undefined && (typeof name !== 'string' || !BUCKET.test(name))) {
        throw new TypeError(`name: must be an S3 bucket name (3–63 of a-z, 0-9, '.', '-'), got ${JSON.stringify(name)}`);
      }
      const bucket = name ?? uniqueBucketName();
      admin ??= client();
      await admin.send(new CreateBucketCommand({ Bucket: bucket }));
      buckets.push(bucket);
      return bucket;
    },
    destroy() {
      for (const c of made.splice(0)) c.destroy();
      admin = undefined;
    },
  };
}

/**
 * Starts MinIO on loopback (free API and console ports, a fresh data directory, root credentials)
 * and waits until `/minio/health/ready` answers 200.
 * @throws Error naming `bash scripts/setup-servers.sh` when MinIO is not installed, or with the
 * server's last output when it does not become ready.
 * @example
 * const s3 = await startS3();
 * t.after(() => s3.stop());
 * const bucket = await s3.createBucket();
 * await s3.client().send(new PutObjectCommand({ Bucket: bucket, Key: 'a', Body: 'x' }));
 */
export async function startS3(options: S3Options = {}): Promise<S3Server> {
  if (options.readyTimeoutMs !== undefined && (!Number.isInteger(options.readyTimeoutMs) || options.readyTimeoutMs < 1)) {
    throw new TypeError(`readyTimeoutMs: must be an integer ≥ 1, got ${String(options.readyTimeoutMs)}`);
  }
  const externalUrl = process.env[S3_ENV.url];
  if ((options.allowExternal ?? true) && externalUrl !== undefined && externalUrl !== '') {
    return externalS3(externalUrl);
  }
  const binary = serverBinary('minio');
  const dir = makeTempDir('minio');
  const dataDir = path.join(dir, 'data');
  const certsDir = path.join(dir, 'certs');
  mkdirSync(dataDir);
  mkdirSync(certsDir);

  let port = 0;
  let consolePort = 0;
  let proc: ManagedProcess | undefined;
  // The ports are free when asked for but may be taken before the server binds: retry then.
  for (let attempt = 1; proc === undefined; attempt++) {
    port = await freePort();
    consolePort = await freePort();
    try {
      proc = await spawnServer({
        name: 'minio',
        command: binary,
        args: [
          'server',
          dataDir,
          '--address',
          `127.0.0.1:${port}`,
          '--console-address',
          `127.0.0.1:${consolePort}`,
          // Otherwise MinIO creates ~/.minio/certs.
          '--certs-dir',
          certsDir,
        ],
        dir,
        env: {
          ...withoutMinioVariables(process.env),
          // MinIO still creates ~/.minio even with --certs-dir: keep it in the temp folder.
          HOME: dir,
          MINIO_ROOT_USER: ROOT_USER,
          MINIO_ROOT_PASSWORD: ROOT_PASSWORD,
          MINIO_SITE_REGION: DEFAULT_REGION,
          MINIO_UPDATE: 'off',
          MINIO_CALLHOME_ENABLE: 'off',
        },
        readyTimeoutMs: options.readyTimeoutMs ?? 30_000,
        ready: async () => (await httpGet(`http://127.0.0.1:${port}/minio/health/ready`)).ok,
      });
    } catch (error) {
      if (attempt >= 3 || !/already in use/i.test(String(error))) {
        removeTempDir(dir);
        throw error;
      }
    }
  }

  const endpoint = `http://127.0.0.1:${port}`;
  const connection = { endpoint, region: DEFAULT_REGION, accessKeyId: ROOT_USER, secretAccessKey: ROOT_PASSWORD };
  const shared = clients(connection);
  let current: ManagedProcess | undefined = proc;
  const stop = async (): Promise<void> => {
    shared.destroy();
    if (current !== undefined) {
      const p = current;
      current = undefined;
      await p.stop();
      removeTempDir(dir);
    }
  };
  return {
    ...connection,
    external: false,
    consoleUrl: `http://127.0.0.1:${consolePort}`,
    dir,
    dataDir,
    logFile: proc.logFile,
    pid: proc.pid,
    createBucket: shared.createBucket,
    client: shared.client,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

// A developer's own MINIO_* settings (e.g. MINIO_VOLUMES, a KMS) must not leak into a test server.
function withoutMinioVariables(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([key]) => !key.startsWith('MINIO_')));
}

function externalS3(url: string): S3Server {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError(`${S3_ENV.url}: must be a URL like http://127.0.0.1:9000, got ${JSON.stringify(url)}`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new TypeError(`${S3_ENV.url}: must be an http:// or https:// URL, got ${JSON.stringify(url)}`);
  }
  const accessKeyId = process.env[S3_ENV.accessKeyId] ?? '';
  const secretAccessKey = process.env[S3_ENV.secretAccessKey] ?? '';
  if (accessKeyId === '' || secretAccessKey === '') {
    throw new TypeError(
      `${S3_ENV.url} is set, so ${S3_ENV.accessKeyId} and ${S3_ENV.secretAccessKey} must be set too ` +
        '(credentials that may create and delete buckets)',
    );
  }
  const connection = {
    endpoint: url.replace(/\/+$/, ''),
    region: process.env[S3_ENV.region] || DEFAULT_REGION,
    accessKeyId,
    secretAccessKey,
  };
  const shared = clients(connection);
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    // Leave the shared server as we found it: remove the buckets this test made.
    const admin = shared.client();
    try {
      for (const bucket of shared.buckets) await emptyAndDeleteBucket(admin, bucket);
    } finally {
      shared.destroy();
    }
  };
  return {
    ...connection,
    external: true,
    consoleUrl: '',
    dir: '',
    dataDir: '',
    logFile: '',
    pid: 0,
    createBucket: shared.createBucket,
    client: shared.client,
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

async function emptyAndDeleteBucket(client: S3Client, bucket: string): Promise<void> {
  let token: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
    const keys = (page.Contents ?? []).flatMap((o) => (o.Key === undefined ? [] : [{ Key: o.Key }]));
    if (keys.length > 0) await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys, Quiet: true } }));
    token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
  } while (token !== undefined);
  await client.send(new DeleteBucketCommand({ Bucket: bucket }));
}
