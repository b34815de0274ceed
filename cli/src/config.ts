/**
 * The CLI's configuration: flags and environment parsed once, at start, with a schema per
 * command, into a typed Config. Nothing else in the CLI reads process.env. Errors name the flag
 * (or variable) and the value; credentials are never echoed.
 */
import path from 'node:path';
import { z } from 'zod';
import { MDS_COMPRESSIONS, MDS_HASH_ALGORITHMS, type MDSHashAlgorithm, isMdsEncoding, parseMDSSizeLimit } from '@shardline/core';
import type { S3Credentials } from '@shardline/loader-node';
import { normalizePrefix } from '@shardline/loader-node/internal';
import { LogLevel } from './log.ts';

export class ConfigError extends Error {
  readonly code = 'ERR_CONFIG';
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

const int = (flag: string, min: number, max: number) =>
  z.coerce
    .number({ error: `${flag} must be a number` })
    .refine((v) => Number.isInteger(v), { error: `${flag} must be an integer` })
    .refine((v) => v >= min && v <= max, { error: `${flag} must be in [${min}, ${max}]` });

export const DemoConfigSchema = z.object({
  samples: int('--samples', 1, 10_000_000),
  batchSize: int('--batch-size', 1, 65_536),
  workers: int('--workers', 0, 64),
  epochs: int('--epochs', 1, 1_000),
  seed: int('--seed', 0, Number.MAX_SAFE_INTEGER),
  ranks: int('--ranks', 1, 4096),
  decodeRounds: int('--decode-rounds', 0, 1_000),
  shuffle: z.boolean(),
  progress: z.boolean(),
  json: z.boolean(),
  logLevel: z.enum(Object.values(LogLevel) as [LogLevel, ...LogLevel[]], {
    error: `SHARDLINE_LOG_LEVEL / --log-level must be one of ${Object.values(LogLevel).join(', ')}`,
  }),
  /** The nats-server binary the data plane starts (npm start installs it and sets SHARDLINE_NATS_SERVER). */
  natsServer: z
    .string()
    .refine((v) => path.isAbsolute(v), { error: '--nats-server (or SHARDLINE_NATS_SERVER) must be an absolute path to a nats-server binary' })
    .optional(),
  /** A running NATS server to use instead of starting one. */
  natsUrl: z
    .string()
    .refine((v) => /^nats:\/\/[^\s/]+\/?$/.test(v), { error: '--nats-url must be nats://host:port' })
    .optional(),
  /** Run the data plane (loaders and trainers over NATS) after the DataLoader (default true; it needs natsServer or natsUrl). */
  dataPlane: z.boolean(),
});
export type DemoConfig = z.infer<typeof DemoConfigSchema>;

/** Defaults of the demo: a complete local job that runs in seconds on a 2-core machine. */
export function defaults(): DemoConfig {
  return {
    samples: 20_000,
    batchSize: 64,
    workers: 2,
    epochs: 2,
    seed: 0,
    ranks: 4,
    decodeRounds: 2,
    shuffle: true,
    progress: true,
    json: false,
    logLevel: 'info',
    dataPlane: true,
  };
}

/** Parses raw flag values (strings from the command line) and env over the defaults. */
export function parseDemoConfig(flags: Record<string, unknown>, env: NodeJS.ProcessEnv): DemoConfig {
  const fromEnv = dropUndefined({ logLevel: env.SHARDLINE_LOG_LEVEL, natsServer: env.SHARDLINE_NATS_SERVER || undefined });
  const raw = { ...defaults(), ...fromEnv, ...dropUndefined(flags) };
  return parseWith(DemoConfigSchema, raw);
}

// Keys whose values are secrets: their messages never echo the value.
const SECRET_KEYS = new Set(['accessKeyId', 'secretAccessKey', 'sessionToken']);

/** Parses `raw` with `schema`; the first issue becomes a ConfigError naming the value at its path. */
function parseWith<S extends z.ZodType>(schema: S, raw: Record<string, unknown>): z.infer<S> {
  const result = schema.safeParse(raw);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  let value: unknown = raw;
  for (const key of issue.path) value = (value as Record<PropertyKey, unknown> | undefined)?.[key];
  const secret = issue.path.some((key) => SECRET_KEYS.has(String(key)));
  throw new ConfigError(secret ? issue.message : `${issue.message}, got ${JSON.stringify(value)}`);
}

function dropUndefined(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

// ---------------------------------------------------------------------------------------------
// The dataset commands: write, inspect, verify, index.

/** Where a dataset lives: a local directory, or a prefix in an S3 bucket. */
export type DatasetLocation =
  | { readonly type: 'local'; readonly path: string }
  | { readonly type: 's3'; readonly url: string; readonly bucket: string; readonly prefix: string };

/** S3 connection settings, from flags and the AWS_* environment. */
export interface S3Settings {
  readonly region: string;
  /** An S3-compatible endpoint (MinIO…); undefined for AWS. Path-style addressing is used with one. */
  readonly endpoint: string | undefined;
  /** Undefined: the AWS SDK's default chain (instance roles, shared config…). */
  readonly credentials: S3Credentials | undefined;
}

/** What the terminal is: progress bars are drawn only on a TTY. */
export interface Terminal {
  readonly stderrIsTTY: boolean;
}

/** The `--from` values of `write`. */
export const WRITE_INPUT_KINDS = ['auto', 'files', 'imagefolder', 'jsonl', 'npy'] as const;
export type WriteInputKind = (typeof WRITE_INPUT_KINDS)[number];

/** Compression families MDSWriter can write. */
const WRITABLE_COMPRESSIONS = new Set(['zstd', 'gz', 'br']);
const REGION = /^[a-z0-9][a-z0-9-]{0,62}$/;
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

interface CommonConfig {
  readonly progress: boolean;
  readonly json: boolean;
  readonly logLevel: LogLevel;
}

export interface WriteConfig extends CommonConfig {
  /** The input file or directory (absolute). */
  readonly input: string;
  readonly output: DatasetLocation;
  readonly from: WriteInputKind;
  /** JSONL columns (name → MDS encoding); undefined: inferred from the first line. */
  readonly columns: Readonly<Record<string, string>> | undefined;
  /** Bytes per shard, or null for one shard. */
  readonly sizeLimit: number | null;
  /** An MDS compression name, or null for none. */
  readonly compression: string | null;
  /** Sorted and unique, as Mosaic requires. */
  readonly hashes: readonly MDSHashAlgorithm[];
  /** Write into a non-empty directory, or over an existing dataset on S3. */
  readonly overwrite: boolean;
  readonly s3: S3Settings;
}

export interface InspectConfig {
  readonly location: DatasetLocation;
  /** List every shard too. */
  readonly shards: boolean;
  readonly json: boolean;
  readonly logLevel: LogLevel;
  readonly s3: S3Settings;
}

export interface VerifyConfig extends CommonConfig {
  readonly location: DatasetLocation;
  /** Stop at the first bad shard instead of checking all. */
  readonly failFast: boolean;
  /** Shards fetched and checked at once. */
  readonly concurrency: number;
  readonly s3: S3Settings;
}

export interface IndexConfig extends CommonConfig {
  /** The WebDataset directory (absolute). */
  readonly directory: string;
  /** Shards scanned at once. */
  readonly concurrency: number;
}

/** Defaults of `write`: Mosaic's 64 MiB shards, no compression, an xxh64 hash so `verify` can check every shard. */
export function writeDefaults(): Omit<WriteConfig, 'input' | 'output' | 's3'> {
  return { from: 'auto', columns: undefined, sizeLimit: 1 << 26, compression: null, hashes: ['xxh64'], overwrite: false, progress: true, json: false, logLevel: 'info' };
}

/** Defaults of `inspect`. */
export function inspectDefaults(): Omit<InspectConfig, 'location' | 's3'> {
  return { shards: false, json: false, logLevel: 'info' };
}

/** Defaults of `verify`: every shard checked, four at a time. */
export function verifyDefaults(): Omit<VerifyConfig, 'location' | 's3'> {
  return { failFast: false, concurrency: 4, progress: true, json: false, logLevel: 'info' };
}

/** Defaults of `index`. */
export function indexDefaults(): Omit<IndexConfig, 'directory'> {
  return { concurrency: 1, progress: true, json: false, logLevel: 'info' };
}

/** A transform that turns a thrown message into an issue of the field. */
function checked<T>(parse: (value: string) => T) {
  return (value: string, ctx: z.RefinementCtx): T => {
    try {
      return parse(value);
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: (error as Error).message });
      return z.NEVER;
    }
  };
}

const logLevelSchema = z.enum(Object.values(LogLevel) as [LogLevel, ...LogLevel[]], {
  error: `SHARDLINE_LOG_LEVEL / --log-level must be one of ${Object.values(LogLevel).join(', ')}`,
});

/** `<name>`: a local directory or `s3://bucket/prefix/`. */
function locationSchema(name: string) {
  return z.string({ error: `${name} is required` }).transform(
    checked((value): DatasetLocation => {
      if (value.startsWith('s3://')) {
        const m = /^s3:\/\/([^/]*)(?:\/(.*))?$/.exec(value)!;
        const bucket = m[1]!;
        if (!BUCKET.test(bucket)) throw new Error(`${name} must be s3://bucket/prefix/ with a valid bucket name (3–63 of a-z, 0-9, '.', '-')`);
        let prefix: string;
        try {
          prefix = normalizePrefix(m[2] ?? '', 'prefix');
        } catch (error) {
          throw new Error(`${name} has an unsafe prefix (${(error as Error).message})`);
        }
        return { type: 's3', url: `s3://${bucket}/${prefix}`, bucket, prefix };
      }
      if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) throw new Error(`${name} must be a local directory or s3://bucket/prefix/`);
      return { type: 'local', path: localPath(name, value) };
    }),
  );
}

function localPath(name: string, value: string): string {
  if (value.trim() === '' || value.includes('\0')) throw new Error(`${name} must be a path`);
  return path.resolve(value);
}

function localPathSchema(name: string) {
  return z.string({ error: `${name} is required` }).transform(
    checked((value) => {
      if (value.startsWith('s3://')) throw new Error(`${name} must be a local directory (this command does not work on S3)`);
      return localPath(name, value);
    }),
  );
}

const sizeLimitSchema = z.string().transform(
  checked((value) => {
    try {
      return parseMDSSizeLimit(value);
    } catch {
      throw new Error('--size-limit must be bytes or a size like 64mb, 512kb, 1gb (units of 1024; 0 for one shard), below 4gb');
    }
  }),
);

const compressionSchema = z.string().transform(
  checked((value) => {
    if (value === 'none') return null;
    const family = value.split(':')[0]!;
    if (!MDS_COMPRESSIONS.includes(value) || !WRITABLE_COMPRESSIONS.has(family)) {
      throw new Error('--compression must be zstd, zstd:<1-22>, gz, gz:<0-9>, br, br:<0-11> or none');
    }
    return value;
  }),
);

const hashesSchema = z.string().transform(
  checked((value) => {
    const names = value.split(',').map((h) => h.trim());
    if (names.length === 1 && names[0] === 'none') return [];
    for (const name of names) {
      if (!(MDS_HASH_ALGORITHMS as readonly string[]).includes(name)) {
        throw new Error(`--hashes: ${JSON.stringify(name)} is not a hash algorithm (known: ${MDS_HASH_ALGORITHMS.join(', ')}; or none)`);
      }
    }
    // Mosaic requires them sorted and unique.
    return [...new Set(names)].sort() as MDSHashAlgorithm[];
  }),
);

/**
 * `--columns name:encoding,...`. An encoding may itself hold ':' and, in an ndarray shape, ','
 * (`x:ndarray:float32:3,32,32`): a comma-separated piece without ':' continues the shape before it.
 */
export function parseColumnsFlag(value: string): Record<string, string> {
  const pieces: string[] = [];
  for (const piece of value.split(',')) {
    if (!piece.includes(':') && pieces.length > 0 && /^ndarray:[^:]+:/.test(pieces.at(-1)!.slice(pieces.at(-1)!.indexOf(':') + 1))) {
      pieces[pieces.length - 1] += `,${piece}`;
    } else {
      pieces.push(piece);
    }
  }
  const columns: Record<string, string> = {};
  for (const piece of pieces) {
    const colon = piece.indexOf(':');
    const name = colon === -1 ? '' : piece.slice(0, colon).trim();
    const encoding = colon === -1 ? '' : piece.slice(colon + 1).trim();
    if (name === '' || encoding === '') throw new Error(`--columns must be name:encoding pairs separated by commas (e.g. id:int64,text:str); ${JSON.stringify(piece)} is not one`);
    if (Object.hasOwn(columns, name)) throw new Error(`--columns names the column ${JSON.stringify(name)} twice`);
    if (encoding === 'pkl') throw new Error(`--columns: column ${JSON.stringify(name)}: pkl (pickle) runs code when read; Shardline never writes it`);
    if (!isMdsEncoding(encoding)) throw new Error(`--columns: column ${JSON.stringify(name)} has the unknown encoding ${JSON.stringify(encoding)} (MDS encodings: int64, float64, str, bytes, json, jpeg, png, ndarray:<dtype>[:<shape>]…)`);
    Object.defineProperty(columns, name, { value: encoding, enumerable: true, writable: true, configurable: true });
  }
  return columns;
}

const positiveInt = (flag: string, max: number) => int(flag, 1, max);

const s3Schema = z
  .object({
    region: z.string().regex(REGION, { error: '--region (or AWS_REGION) must be a region name like us-east-1' }),
    endpoint: z
      .string()
      .refine(isHttpUrl, { error: '--endpoint (or AWS_ENDPOINT_URL) must be an http:// or https:// URL' })
      .optional(),
    accessKeyId: z.string().optional(),
    secretAccessKey: z.string().optional(),
    sessionToken: z.string().optional(),
  })
  .transform((s, ctx): S3Settings => {
    const { accessKeyId, secretAccessKey, sessionToken } = s;
    if ((accessKeyId === undefined) !== (secretAccessKey === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['accessKeyId'], message: 'AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together' });
      return z.NEVER;
    }
    if (sessionToken !== undefined && accessKeyId === undefined) {
      ctx.addIssue({ code: 'custom', path: ['sessionToken'], message: 'AWS_SESSION_TOKEN is set but AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not' });
      return z.NEVER;
    }
    const credentials = accessKeyId === undefined ? undefined : { accessKeyId, secretAccessKey: secretAccessKey!, ...(sessionToken === undefined ? {} : { sessionToken }) };
    return { region: s.region, endpoint: s.endpoint, credentials };
  });

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}

/** The S3 settings' raw values: flags win over the environment; blank variables count as unset. */
function rawS3(flags: Record<string, unknown>, env: NodeJS.ProcessEnv): Record<string, unknown> {
  const variable = (name: string): string | undefined => {
    const v = env[name]?.trim();
    return v === undefined || v === '' ? undefined : v;
  };
  return dropUndefined({
    region: flags.region ?? variable('AWS_REGION') ?? variable('AWS_DEFAULT_REGION') ?? 'us-east-1',
    endpoint: flags.endpoint ?? variable('AWS_ENDPOINT_URL_S3') ?? variable('AWS_ENDPOINT_URL'),
    accessKeyId: variable('AWS_ACCESS_KEY_ID'),
    secretAccessKey: variable('AWS_SECRET_ACCESS_KEY'),
    sessionToken: variable('AWS_SESSION_TOKEN'),
  });
}

const commonSchema = {
  progress: z.boolean().optional(),
  json: z.boolean().optional(),
  logLevel: logLevelSchema.optional(),
};

const WriteFlagsSchema = z.object({
  input: localPathSchema('<input>'),
  output: locationSchema('<output>'),
  from: z.enum(WRITE_INPUT_KINDS, { error: `--from must be one of ${WRITE_INPUT_KINDS.join(', ')}` }).optional(),
  columns: z.string().transform(checked(parseColumnsFlag)).optional(),
  sizeLimit: sizeLimitSchema.optional(),
  compression: compressionSchema.optional(),
  hashes: hashesSchema.optional(),
  overwrite: z.boolean().optional(),
  s3: s3Schema,
  ...commonSchema,
});

const InspectFlagsSchema = z.object({
  location: locationSchema('<dataset>'),
  shards: z.boolean().optional(),
  json: z.boolean().optional(),
  logLevel: logLevelSchema.optional(),
  s3: s3Schema,
});

const VerifyFlagsSchema = z.object({
  location: locationSchema('<dataset>'),
  failFast: z.boolean().optional(),
  concurrency: positiveInt('--concurrency', 64).optional(),
  s3: s3Schema,
  ...commonSchema,
});

const IndexFlagsSchema = z.object({
  directory: localPathSchema('<directory>'),
  concurrency: positiveInt('--concurrency', 64).optional(),
  ...commonSchema,
});

/** The flags every dataset command shares, as commander gives them. */
function rawCommon(flags: Record<string, unknown>, env: NodeJS.ProcessEnv): Record<string, unknown> {
  return dropUndefined({ ...flags, logLevel: flags.logLevel ?? env.SHARDLINE_LOG_LEVEL });
}

/** Bars only when asked for and drawn on a terminal. */
function withProgress<T extends { progress: boolean }>(config: T, terminal: Terminal): T {
  return { ...config, progress: config.progress && terminal.stderrIsTTY };
}

/**
 * `shardline write <input> <output>`: parses the arguments, flags and AWS_* environment.
 * @throws ConfigError naming the flag, argument or variable at fault.
 */
export function parseWriteConfig(
  args: { input: unknown; output: unknown },
  flags: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
  terminal: Terminal,
): WriteConfig {
  const parsed = parseWith(WriteFlagsSchema, { ...rawCommon(flags, env), ...args, s3: rawS3(flags, env) });
  return withProgress({ ...writeDefaults(), ...dropUndefined(parsed) } as WriteConfig, terminal);
}

/** `shardline inspect <dataset>`. @throws ConfigError naming the flag, argument or variable at fault. */
export function parseInspectConfig(args: { location: unknown }, flags: Record<string, unknown>, env: NodeJS.ProcessEnv): InspectConfig {
  const parsed = parseWith(InspectFlagsSchema, { ...rawCommon(flags, env), ...args, s3: rawS3(flags, env) });
  return { ...inspectDefaults(), ...dropUndefined(parsed) } as InspectConfig;
}

/** `shardline verify <dataset>`. @throws ConfigError naming the flag, argument or variable at fault. */
export function parseVerifyConfig(args: { location: unknown }, flags: Record<string, unknown>, env: NodeJS.ProcessEnv, terminal: Terminal): VerifyConfig {
  const parsed = parseWith(VerifyFlagsSchema, { ...rawCommon(flags, env), ...args, s3: rawS3(flags, env) });
  return withProgress({ ...verifyDefaults(), ...dropUndefined(parsed) } as VerifyConfig, terminal);
}

/** `shardline index <directory>`. @throws ConfigError naming the flag or argument at fault. */
export function parseIndexConfig(args: { directory: unknown }, flags: Record<string, unknown>, env: NodeJS.ProcessEnv, terminal: Terminal): IndexConfig {
  const parsed = parseWith(IndexFlagsSchema, { ...rawCommon(flags, env), ...args });
  return withProgress({ ...indexDefaults(), ...dropUndefined(parsed) } as IndexConfig, terminal);
}

// ---------------------------------------------------------------------------------------------
// The loader process: `shardline loader`.

/** Each loader setting's environment variable (flags win over them), so a pod spec can set them. */
export const LOADER_ENV = {
  job: 'SHARDLINE_JOB',
  namespace: 'SHARDLINE_NAMESPACE',
  rank: 'SHARDLINE_RANK',
  worldSize: 'SHARDLINE_WORLD_SIZE',
  dataset: 'SHARDLINE_DATASET',
  natsUrl: 'SHARDLINE_NATS_URL',
  natsCreds: 'SHARDLINE_NATS_CREDS',
  cacheDir: 'SHARDLINE_CACHE_DIR',
  cacheBudget: 'SHARDLINE_CACHE_BUDGET',
  batchSize: 'SHARDLINE_BATCH_SIZE',
  epochs: 'SHARDLINE_EPOCHS',
  seed: 'SHARDLINE_SEED',
  shuffle: 'SHARDLINE_SHUFFLE',
  metricsPort: 'SHARDLINE_METRICS_PORT',
  workers: 'SHARDLINE_WORKERS',
  firstEpoch: 'SHARDLINE_FIRST_EPOCH',
  firstStep: 'SHARDLINE_FIRST_STEP',
  shmDir: 'SHARDLINE_SHM_DIR',
  hostId: 'SHARDLINE_HOST_ID',
  maxHeld: 'SHARDLINE_MAX_HELD',
} as const;

/** The shuffle modes of `--shuffle`. */
export const LOADER_SHUFFLES = ['none', 'global', 'shard-aware'] as const;

export interface LoaderConfig {
  readonly job: string;
  readonly namespace: string;
  readonly rank: number;
  readonly worldSize: number;
  readonly dataset: DatasetLocation;
  /** One or more NATS server URLs. */
  readonly natsUrls: readonly string[];
  /** A NATS credentials file (absolute), or undefined for none. */
  readonly natsCreds: string | undefined;
  readonly cacheDir: string;
  readonly cacheBudgetBytes: number;
  readonly batchSize: number;
  readonly epochs: number;
  readonly seed: number;
  readonly shuffle: (typeof LOADER_SHUFFLES)[number];
  /** 0 picks a free port. */
  readonly metricsPort: number;
  /** Worker threads that decode and build batches (0: the main thread). */
  readonly workers: number;
  /** Where serving starts: a replacement loader resumes its rank's stream here. */
  readonly firstEpoch: number;
  readonly firstStep: number;
  /** The shared-memory segment folder, or false for NATS only (`--shm-dir off`). */
  readonly shmDir: string | false;
  /** This loader's host for the shared-memory handshake (undefined: the hostname). */
  readonly hostId: string | undefined;
  /** Bytes held unacked at most (undefined: the sender's default, 48 MiB). */
  readonly maxHeldBytes: number | undefined;
  readonly logLevel: LogLevel;
  readonly s3: S3Settings;
}

/** Defaults of `loader`: one epoch, shard-aware shuffling (the cache stays hot), metrics on 9090. */
export function loaderDefaults(): Pick<
  LoaderConfig,
  'namespace' | 'natsUrls' | 'cacheBudgetBytes' | 'epochs' | 'seed' | 'shuffle' | 'metricsPort' | 'workers' | 'firstEpoch' | 'firstStep' | 'shmDir' | 'logLevel'
> {
  return {
    namespace: 'default',
    natsUrls: ['nats://127.0.0.1:4222'],
    cacheBudgetBytes: 8 * 1024 ** 3,
    epochs: 1,
    seed: 0,
    shuffle: 'shard-aware',
    metricsPort: 9090,
    workers: 2,
    firstEpoch: 0,
    firstStep: 0,
    shmDir: '/dev/shm',
    logLevel: 'info',
  };
}

const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const SIZE_UNITS: Readonly<Record<string, number>> = { '': 1, b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3, tb: 1024 ** 4 };

/** `2gb`, `512mb`, `1048576`: bytes in units of 1024, at least 1, a safe integer. */
export function parseByteSize(flag: string, value: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?b)?$/i.exec(value.trim());
  const bytes = m === null ? NaN : Math.floor(Number(m[1]) * SIZE_UNITS[(m[2] ?? '').toLowerCase()]!);
  if (!Number.isSafeInteger(bytes) || bytes < 1) throw new Error(`${flag} must be a size in bytes or like 512mb, 8gb (units of 1024)`);
  return bytes;
}

const dnsLabel = (flag: string) =>
  z.string({ error: `${flag} is required` }).regex(DNS_LABEL, { error: `${flag} must be a DNS label (1 to 63 of a-z, 0-9, '-', starting and ending with a letter or digit)` });

const LoaderFlagsSchema = z
  .object({
    job: dnsLabel('--job (or SHARDLINE_JOB)'),
    namespace: dnsLabel('--namespace (or SHARDLINE_NAMESPACE)'),
    rank: int('--rank (or SHARDLINE_RANK)', 0, 2 ** 31 - 2),
    worldSize: int('--world-size (or SHARDLINE_WORLD_SIZE)', 1, 2 ** 31 - 1),
    dataset: locationSchema('--dataset (or SHARDLINE_DATASET)'),
    natsUrls: z.string().transform(
      checked((value) => {
        const urls = value.split(',').map((u) => u.trim());
        for (const url of urls) {
          if (!/^(nats|tls|wss?):\/\/[^\s/]+\/?$/.test(url)) throw new Error('--nats-url (or SHARDLINE_NATS_URL) must be nats://host:port, comma-separated for several');
        }
        return urls;
      }),
    ),
    natsCreds: z.string().transform(checked((value) => localPath('--nats-creds (or SHARDLINE_NATS_CREDS)', value))).optional(),
    cacheDir: z.string({ error: '--cache-dir (or SHARDLINE_CACHE_DIR) is required' }).transform(checked((value) => localPath('--cache-dir (or SHARDLINE_CACHE_DIR)', value))),
    cacheBudgetBytes: z.string().transform(checked((value) => parseByteSize('--cache-budget (or SHARDLINE_CACHE_BUDGET)', value))),
    batchSize: int('--batch-size (or SHARDLINE_BATCH_SIZE)', 1, 1 << 24),
    epochs: int('--epochs (or SHARDLINE_EPOCHS)', 1, 1_000_000),
    seed: int('--seed (or SHARDLINE_SEED)', 0, Number.MAX_SAFE_INTEGER),
    shuffle: z.enum(LOADER_SHUFFLES, { error: `--shuffle (or SHARDLINE_SHUFFLE) must be one of ${LOADER_SHUFFLES.join(', ')}` }),
    metricsPort: int('--metrics-port (or SHARDLINE_METRICS_PORT)', 0, 65_535),
    workers: int('--workers (or SHARDLINE_WORKERS)', 0, 64),
    firstEpoch: int('--first-epoch (or SHARDLINE_FIRST_EPOCH)', 0, 2 ** 32 - 2),
    firstStep: int('--first-step (or SHARDLINE_FIRST_STEP)', 0, 2 ** 32 - 1),
    shmDir: z.string().transform(checked((value): string | false => (value === 'off' ? false : localPath('--shm-dir (or SHARDLINE_SHM_DIR)', value)))),
    maxHeldBytes: z.string().transform(checked((value) => parseByteSize('--max-held (or SHARDLINE_MAX_HELD)', value))).optional(),
    hostId: z
      .string()
      .regex(/^[\x21-\x7e]{1,128}$/, { error: '--host-id (or SHARDLINE_HOST_ID) must be 1 to 128 printable ASCII characters without spaces' })
      .optional(),
    logLevel: logLevelSchema,
    s3: s3Schema,
  })
  .superRefine((c, ctx) => {
    if (c.rank >= c.worldSize) ctx.addIssue({ code: 'custom', path: ['rank'], message: `--rank must be below --world-size ${c.worldSize}` });
  });

/**
 * `shardline loader`: flags over SHARDLINE_* variables over the defaults, parsed once.
 * @throws ConfigError naming the flag (and its variable) at fault.
 */
export function parseLoaderConfig(flags: Record<string, unknown>, env: NodeJS.ProcessEnv): LoaderConfig {
  const fromEnv: Record<string, unknown> = {};
  for (const [key, variable] of Object.entries(LOADER_ENV)) {
    const v = env[variable]?.trim();
    if (v !== undefined && v !== '') fromEnv[key] = v;
  }
  const { natsUrl, cacheBudget, maxHeld, ...rest } = { ...fromEnv, ...dropUndefined(flags) } as Record<string, unknown>;
  const raw = dropUndefined({
    ...loaderDefaults(),
    natsUrls: natsUrl ?? (env.NATS_URL?.trim() || undefined) ?? loaderDefaults().natsUrls.join(','),
    cacheBudgetBytes: String(cacheBudget ?? loaderDefaults().cacheBudgetBytes),
    maxHeldBytes: maxHeld === undefined ? undefined : String(maxHeld),
    logLevel: env.SHARDLINE_LOG_LEVEL ?? loaderDefaults().logLevel,
    ...rest,
    s3: rawS3(flags, env),
  });
  return parseWith(LoaderFlagsSchema, raw) as LoaderConfig;
}
