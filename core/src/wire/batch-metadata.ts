/**
 * The batch fields of the wire format's safetensors `__metadata__`: which job, epoch, rank and
 * step a batch belongs to and the global ids of its samples. safetensors metadata is a map of
 * string to string, so numbers are written as decimal strings and the sample ids as a compact JSON
 * array string (`"[17,3,0]"`), which a Python trainer reads with `json.loads`.
 */
import { ArgumentError, FormatError } from '../errors.ts';
import { requireInt } from '../validate.ts';

/** The value of `wire_version` this module writes and the only one it reads. */
export const WIRE_VERSION = '1';

/** Metadata keys the batch format reserves; extra fields may use any other key. */
export const BATCH_METADATA_KEYS = ['wire_version', 'job', 'epoch', 'rank', 'step', 'sample_ids'] as const;
export type BatchMetadataKey = (typeof BATCH_METADATA_KEYS)[number];

/** Who a batch is for and what is in it. Integers are non-negative safe integers (< 2^53). */
export interface BatchMetadata {
  /** The DataLoaderJob's name. Non-empty. */
  readonly job: string;
  readonly epoch: number;
  readonly rank: number;
  /** The rank's step (batch number) within the epoch. */
  readonly step: number;
  /** Global sample id of each row of the batch, in row order. */
  readonly sampleIds: readonly number[];
  /** Free-form string fields, written after the reserved ones in sorted key order. */
  readonly extra?: Readonly<Record<string, string>>;
}

/** BatchMetadata as decoded: `extra` is always present (empty when the batch had none). */
export interface DecodedBatchMetadata extends BatchMetadata {
  readonly sampleIds: number[];
  readonly extra: Readonly<Record<string, string>>;
}

const RESERVED: ReadonlySet<string> = new Set(BATCH_METADATA_KEYS);
const LONE_SURROGATE = /\p{Cs}/u;

/** Whether a string can travel in JSON that every reader accepts (no lone UTF-16 surrogates). */
export function isWellFormed(s: string): boolean {
  return !LONE_SURROGATE.test(s);
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  return typeof value === 'object' ? 'an object' : String(value);
}

/**
 * Checks batch metadata and turns it into the string map written as `__metadata__`, in the fixed
 * key order `wire_version, job, epoch, rank, step, sample_ids`, then extra keys sorted.
 * @example
 * batchMetadataToStrings({ job: 'j', epoch: 0, rank: 1, step: 2, sampleIds: [7, 9] })
 * // { wire_version: '1', job: 'j', epoch: '0', rank: '1', step: '2', sample_ids: '[7,9]' }
 */
export function batchMetadataToStrings(metadata: BatchMetadata): Record<string, string> {
  if (typeof metadata !== 'object' || metadata === null) {
    throw new ArgumentError('metadata', `must be an object, got ${describe(metadata)}`);
  }
  const { job, sampleIds, extra } = metadata;
  if (typeof job !== 'string' || job.length === 0 || !isWellFormed(job)) {
    throw new ArgumentError('metadata.job', `must be a non-empty, well-formed string, got ${describe(job)}`);
  }
  const epoch = requireInt('metadata.epoch', metadata.epoch);
  const rank = requireInt('metadata.rank', metadata.rank);
  const step = requireInt('metadata.step', metadata.step);
  if (!Array.isArray(sampleIds)) {
    throw new ArgumentError('metadata.sampleIds', `must be an array of integers, got ${describe(sampleIds)}`);
  }
  for (let i = 0; i < sampleIds.length; i++) {
    const id: unknown = sampleIds[i];
    if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) {
      throw new ArgumentError(`metadata.sampleIds[${i}]`, `must be an integer in [0, 2^53 - 1], got ${describe(id)}`);
    }
  }
  const out: Record<string, string> = {
    wire_version: WIRE_VERSION,
    job,
    epoch: String(epoch),
    rank: String(rank),
    step: String(step),
    sample_ids: `[${sampleIds.join(',')}]`,
  };
  if (extra !== undefined) {
    if (typeof extra !== 'object' || extra === null || Array.isArray(extra)) {
      throw new ArgumentError('metadata.extra', `must be an object of strings, got ${describe(extra)}`);
    }
    for (const key of Object.keys(extra).sort()) {
      const value: unknown = extra[key];
      if (RESERVED.has(key)) {
        throw new ArgumentError(`metadata.extra.${key}`, `is a reserved batch field (${BATCH_METADATA_KEYS.join(', ')})`);
      }
      if (!isWellFormed(key)) throw new ArgumentError('metadata.extra', `key ${describe(key)} is not well-formed`);
      if (typeof value !== 'string' || !isWellFormed(value)) {
        throw new ArgumentError(`metadata.extra.${key}`, `must be a well-formed string, got ${describe(value)}`);
      }
      // defineProperty, not assignment: a key named "__proto__" must stay a plain field.
      Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
    }
  }
  return out;
}

const DECIMAL = /^(?:0|[1-9][0-9]{0,15})$/;

function parseCount(strings: Readonly<Record<string, string>>, key: 'epoch' | 'rank' | 'step'): number {
  const text = strings[key];
  if (text === undefined) throw new FormatError(`batch __metadata__: missing required field "${key}"`);
  const value = DECIMAL.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(value)) {
    throw new FormatError(`batch __metadata__.${key}: must be a decimal integer in [0, 2^53 - 1], got ${describe(text)}`);
  }
  return value;
}

/**
 * Parses a JSON array of non-negative integers (`[1,2,3]`, spaces allowed as Python's json.dumps
 * writes them). Scans by hand: it is the largest field, and ids must be exact integers, which
 * JSON.parse would not check (`1.0`, `1e3`).
 */
export function parseSampleIds(text: string): number[] {
  const fail = (why: string): never => {
    throw new FormatError(`batch __metadata__.sample_ids: ${why}`);
  };
  const ids: number[] = [];
  const n = text.length;
  let i = 0;
  const skipSpace = (): void => {
    while (i < n && (text[i] === ' ' || text[i] === '\n' || text[i] === '\t' || text[i] === '\r')) i++;
  };
  skipSpace();
  if (text[i] !== '[') fail(`must be a JSON array of integers, got ${describe(text)}`);
  i++;
  skipSpace();
  if (text[i] === ']') {
    i++;
  } else {
    for (;;) {
      const start = i;
      while (i < n && text.charCodeAt(i) >= 48 && text.charCodeAt(i) <= 57) i++;
      const digits = text.slice(start, i);
      if (!DECIMAL.test(digits) || !Number.isSafeInteger(Number(digits))) {
        fail(`element ${ids.length} must be an integer in [0, 2^53 - 1], got ${describe(text.slice(start, start + 20))}`);
      }
      ids.push(Number(digits));
      skipSpace();
      if (text[i] === ',') {
        i++;
        skipSpace();
        continue;
      }
      if (text[i] === ']') {
        i++;
        break;
      }
      fail(`expected "," or "]" after element ${ids.length - 1}, got ${describe(text.slice(i, i + 20))}`);
    }
  }
  skipSpace();
  if (i !== n) fail(`unexpected text after the array: ${describe(text.slice(i, i + 20))}`);
  return ids;
}

/**
 * Reads batch metadata from a decoded `__metadata__` map. Every problem is a FormatError naming
 * the field: a missing field, a `wire_version` other than {@link WIRE_VERSION}, a non-decimal
 * number, an empty job.
 */
export function batchMetadataFromStrings(strings: Readonly<Record<string, string>> | undefined): DecodedBatchMetadata {
  if (strings === undefined) {
    throw new FormatError(`batch: the header has no __metadata__ (a batch needs ${BATCH_METADATA_KEYS.join(', ')})`);
  }
  const version = strings.wire_version;
  if (version === undefined) throw new FormatError('batch __metadata__: missing required field "wire_version"');
  if (version !== WIRE_VERSION) {
    throw new FormatError(`batch __metadata__.wire_version: ${describe(version)} is not supported (this reader reads "${WIRE_VERSION}")`);
  }
  const job = strings.job;
  if (job === undefined) throw new FormatError('batch __metadata__: missing required field "job"');
  if (job.length === 0) throw new FormatError('batch __metadata__.job: must not be empty');
  const epoch = parseCount(strings, 'epoch');
  const rank = parseCount(strings, 'rank');
  const step = parseCount(strings, 'step');
  const ids = strings.sample_ids;
  if (ids === undefined) throw new FormatError('batch __metadata__: missing required field "sample_ids"');
  const sampleIds = parseSampleIds(ids);
  const extra = Object.fromEntries(Object.entries(strings).filter(([key]) => !RESERVED.has(key)));
  return { job, epoch, rank, step, sampleIds, extra };
}
