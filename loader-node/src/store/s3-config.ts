/**
 * S3Source options from configuration: a dataset URL (`s3://bucket/prefix/`), the environment
 * (passed in by the binary's config parser — nothing here reads process.env) and a mounted
 * Kubernetes Secret with credentials.
 *
 * The Secret, mounted as a folder (a Secret volume), holds either
 * - `access-key-id` and `secret-access-key` (and optionally `session-token`), one value per file
 *   (surrounding whitespace, e.g. the newline of `kubectl create secret --from-file`, is ignored), or
 * - `credentials.json`: `{"accessKeyId": "…", "secretAccessKey": "…", "sessionToken": "…"}`
 *   (sessionToken optional); `secretPath` may also name such a JSON file directly.
 * Kubernetes rewrites a mounted Secret in place when it changes, so the credentials are read again
 * every `refreshMs` (default one minute): rotation needs no restart.
 *
 * Which credentials win: explicit `credentials`, then `secretPath`, then AWS_ACCESS_KEY_ID /
 * AWS_SECRET_ACCESS_KEY (/ AWS_SESSION_TOKEN) from `env`, then none (the AWS SDK's default chain:
 * IRSA web identity, container and instance metadata, shared config).
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { ArgumentError, FormatError } from '@shardline/core';
import { requireInt } from '@shardline/core/internal';
import type { S3Credentials, S3CredentialsProvider, S3SourceOptions } from './s3-source.ts';

/** The file names of a mounted credentials Secret. */
export const S3_SECRET_FILES = {
  accessKeyId: 'access-key-id',
  secretAccessKey: 'secret-access-key',
  sessionToken: 'session-token',
  json: 'credentials.json',
} as const;

/** The environment variables {@link s3SourceOptionsFrom} reads. */
export const S3_ENV_VARIABLES = {
  accessKeyId: 'AWS_ACCESS_KEY_ID',
  secretAccessKey: 'AWS_SECRET_ACCESS_KEY',
  sessionToken: 'AWS_SESSION_TOKEN',
  region: 'AWS_REGION',
  defaultRegion: 'AWS_DEFAULT_REGION',
  endpointS3: 'AWS_ENDPOINT_URL_S3',
  endpoint: 'AWS_ENDPOINT_URL',
} as const;

/** Where {@link s3SourceOptionsFrom} takes its settings from. */
export interface S3ConfigInput {
  /** The dataset's location, `s3://bucket/prefix/` (the prefix may be empty). */
  url: string;
  /** Environment variables, as the binary's config parser read them (e.g. `process.env`). */
  env?: Readonly<Record<string, string | undefined>>;
  /** A mounted Secret: a folder, or a JSON file (see the module comment for the layout). */
  secretPath?: string;
  /** How often credentials from `secretPath` are read again (default 60 000 ms). */
  refreshMs?: number;
  /** Explicit credentials: they win over `secretPath` and `env`. */
  credentials?: S3Credentials;
  /** Other settings (region, endpoint, partSize…); they win over `env`. */
  options?: Partial<Omit<S3SourceOptions, 'bucket' | 'prefix' | 'credentials'>>;
}

const DEFAULT_REGION = 'us-east-1';
const DEFAULT_REFRESH_MS = 60_000;
// The AWS SDK asks a provider again once its credentials expire within this window (its
// EXPIRATION_MS): an expiration this far plus refreshMs ahead means "read again after refreshMs".
const SDK_REFRESH_WINDOW_MS = 5 * 60_000;
// A secret value is a few hundred bytes; anything much larger is not a credentials file.
const MAX_SECRET_FILE_BYTES = 64 * 1024;
const S3_URL = /^s3:\/\/([^/]+)(?:\/(.*))?$/;

/**
 * S3Source options for the dataset at `input.url`, with region, endpoint and credentials from
 * `input` and the environment. With a custom endpoint (MinIO, Ceph…) `forcePathStyle` defaults to
 * true. The Secret, when given, is read once here so a bad one fails at start.
 * @throws ArgumentError naming the field or variable at fault; FormatError for a malformed Secret.
 * @example
 * // In the loader's config parser, the one place that reads process.env:
 * const options = await s3SourceOptionsFrom({
 *   url: config.dataset, env: process.env, secretPath: '/var/run/secrets/shardline/s3',
 * });
 * const source = new S3Source(options);
 */
export async function s3SourceOptionsFrom(input: S3ConfigInput): Promise<S3SourceOptions> {
  if (typeof input !== 'object' || input === null) throw new ArgumentError('input', 'must be an object');
  const { bucket, prefix } = parseS3Url(input.url);
  const env = input.env ?? {};
  const value = (name: string): string | undefined => {
    const v = env[name];
    return v === undefined || v.trim() === '' ? undefined : v.trim();
  };
  const endpoint = input.options?.endpoint ?? value(S3_ENV_VARIABLES.endpointS3) ?? value(S3_ENV_VARIABLES.endpoint);
  const options: S3SourceOptions = {
    ...input.options,
    bucket,
    prefix,
    region: input.options?.region ?? value(S3_ENV_VARIABLES.region) ?? value(S3_ENV_VARIABLES.defaultRegion) ?? DEFAULT_REGION,
    forcePathStyle: input.options?.forcePathStyle ?? endpoint !== undefined,
  };
  if (endpoint !== undefined) options.endpoint = endpoint;

  const credentials = await credentialsFrom(input, value);
  if (credentials !== undefined) options.credentials = credentials;
  return options;
}

async function credentialsFrom(input: S3ConfigInput, value: (name: string) => string | undefined): Promise<S3Credentials | S3CredentialsProvider | undefined> {
  if (input.credentials !== undefined) return input.credentials;
  if (input.secretPath !== undefined) {
    const refreshMs = requireInt('refreshMs', input.refreshMs ?? DEFAULT_REFRESH_MS, { min: 0 });
    await readS3Secret(input.secretPath);
    return mountedSecretCredentials(input.secretPath, refreshMs);
  }
  const accessKeyId = value(S3_ENV_VARIABLES.accessKeyId);
  const secretAccessKey = value(S3_ENV_VARIABLES.secretAccessKey);
  const sessionToken = value(S3_ENV_VARIABLES.sessionToken);
  if (accessKeyId === undefined && secretAccessKey === undefined) {
    if (sessionToken !== undefined) {
      throw new ArgumentError(S3_ENV_VARIABLES.sessionToken, `is set but ${S3_ENV_VARIABLES.accessKeyId} and ${S3_ENV_VARIABLES.secretAccessKey} are not`);
    }
    return undefined;
  }
  if (accessKeyId === undefined) throw new ArgumentError(S3_ENV_VARIABLES.accessKeyId, `must be set when ${S3_ENV_VARIABLES.secretAccessKey} is`);
  if (secretAccessKey === undefined) throw new ArgumentError(S3_ENV_VARIABLES.secretAccessKey, `must be set when ${S3_ENV_VARIABLES.accessKeyId} is`);
  return sessionToken === undefined ? { accessKeyId, secretAccessKey } : { accessKeyId, secretAccessKey, sessionToken };
}

/**
 * `s3://bucket/prefix/` → bucket and prefix (the prefix as given: S3Source normalizes and checks it).
 * @throws ArgumentError naming `url`.
 */
export function parseS3Url(url: unknown): { bucket: string; prefix: string } {
  const match = typeof url === 'string' ? S3_URL.exec(url) : null;
  if (match === null) throw new ArgumentError('url', `must look like s3://bucket/prefix/, got ${JSON.stringify(url)}`);
  return { bucket: match[1]!, prefix: match[2] ?? '' };
}

/**
 * Reads the credentials of a mounted Secret (a folder or a JSON file; see the module comment).
 * Messages name the file and field at fault, never a secret value.
 * @throws ArgumentError when `secretPath` does not exist or holds neither layout; FormatError for
 * an empty, over-long or malformed file.
 */
export async function readS3Secret(secretPath: string): Promise<S3Credentials> {
  if (typeof secretPath !== 'string' || secretPath === '') throw new ArgumentError('secretPath', `must be a path, got ${JSON.stringify(secretPath)}`);
  const info = await stat(secretPath).catch((error: unknown) => {
    throw new ArgumentError('secretPath', `${secretPath} cannot be read: ${(error as Error).message}`, { cause: error });
  });
  if (info.isFile()) return credentialsFromJson(secretPath);
  const file = (name: string): string => path.join(secretPath, name);
  if (await exists(file(S3_SECRET_FILES.accessKeyId))) {
    const accessKeyId = await readSecretFile(file(S3_SECRET_FILES.accessKeyId));
    const secretAccessKey = await readSecretFile(file(S3_SECRET_FILES.secretAccessKey));
    const sessionToken = (await exists(file(S3_SECRET_FILES.sessionToken))) ? await readSecretFile(file(S3_SECRET_FILES.sessionToken)) : undefined;
    return sessionToken === undefined ? { accessKeyId, secretAccessKey } : { accessKeyId, secretAccessKey, sessionToken };
  }
  if (await exists(file(S3_SECRET_FILES.json))) return credentialsFromJson(file(S3_SECRET_FILES.json));
  throw new ArgumentError(
    'secretPath',
    `${secretPath} holds neither ${S3_SECRET_FILES.accessKeyId} + ${S3_SECRET_FILES.secretAccessKey} nor ${S3_SECRET_FILES.json}`,
  );
}

/**
 * A credentials provider over a mounted Secret that reads it again every `refreshMs`, so a
 * rotated Secret is picked up without a restart.
 */
export function mountedSecretCredentials(secretPath: string, refreshMs = DEFAULT_REFRESH_MS): S3CredentialsProvider {
  return async () => ({ ...(await readS3Secret(secretPath)), expiration: new Date(Date.now() + SDK_REFRESH_WINDOW_MS + refreshMs) });
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

async function readSecretFile(file: string): Promise<string> {
  const info = await stat(file).catch((error: unknown) => {
    throw new ArgumentError('secretPath', `${file} cannot be read: ${(error as Error).message}`, { cause: error });
  });
  if (!info.isFile()) throw new FormatError(`${file} is not a file`);
  if (info.size > MAX_SECRET_FILE_BYTES) throw new FormatError(`${file} is ${info.size} bytes, over the ${MAX_SECRET_FILE_BYTES} a credentials file may hold`);
  const text = (await readFile(file, 'utf8')).trim();
  if (text === '') throw new FormatError(`${file} is empty`);
  return text;
}

async function credentialsFromJson(file: string): Promise<S3Credentials> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readSecretFile(file));
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    // SyntaxError messages quote the input: keep the secret out of ours.
    throw new FormatError(`${file} is not valid JSON`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new FormatError(`${file} must hold a JSON object`);
  const record = parsed as Record<string, unknown>;
  const field = (name: string, required: boolean): string | undefined => {
    const v = record[name];
    if (v === undefined && !required) return undefined;
    if (typeof v !== 'string' || v.trim() === '') throw new FormatError(`${file}: ${name} must be a non-empty string`);
    return v.trim();
  };
  const accessKeyId = field('accessKeyId', true)!;
  const secretAccessKey = field('secretAccessKey', true)!;
  const sessionToken = field('sessionToken', false);
  return sessionToken === undefined ? { accessKeyId, secretAccessKey } : { accessKeyId, secretAccessKey, sessionToken };
}
