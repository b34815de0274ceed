/**
 * NATS subjects of the delivery protocol. Every subject of a job lies under
 * `shardline.<namespace>.<job>.`, so one permission scope per job covers it, and a rank's four
 * subjects are `shardline.<namespace>.<job>.rank.<r>.{hello,ctl,data,events}` (docs/protocol.md,
 * "Subjects"). Names are checked before they become subject tokens: only lower-case letters,
 * digits and inner hyphens (a Kubernetes DNS label), so no job name can inject `.`, `*`, `>` or
 * whitespace into a subject.
 */
import { ArgumentError } from '../errors.ts';
import { MAX_U32 } from './position.ts';

/** The first token of every Shardline subject. */
export const SUBJECT_ROOT = 'shardline';

/** What a namespace or job name must match: a DNS label (RFC 1123), at most 63 characters. */
export const SUBJECT_TOKEN = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** Which rank of which job a delivery stream is for. */
export interface StreamScope {
  /** Kubernetes namespace of the DataLoaderJob (default `default`). */
  readonly namespace?: string;
  /** The DataLoaderJob's name. */
  readonly job: string;
  /** The trainer rank, an integer in [0, 2^32 − 1]. */
  readonly rank: number;
}

/** The subjects of one rank's stream (see docs/protocol.md for who publishes on which). */
export interface DeliverySubjects {
  /** Trainer → loader: `hello`. */
  readonly hello: string;
  /** Trainer → loader: `credit`, `ack`, `nack`, `bye`. */
  readonly ctl: string;
  /** Loader → trainer: binary batch chunks. */
  readonly data: string;
  /** Loader → trainer: `welcome`, `refused`, `end-of-epoch`, `reset`. */
  readonly events: string;
}

/** Checks a namespace or job name; the ArgumentError names `what` and the value. */
export function requireSubjectToken(what: string, value: unknown): string {
  if (typeof value !== 'string' || !SUBJECT_TOKEN.test(value)) {
    const shown = typeof value === 'string' ? JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value) : String(value);
    throw new ArgumentError(
      what,
      `must be 1 to 63 lower-case letters, digits or inner hyphens (a DNS label, usable as a NATS subject token), got ${shown}`,
    );
  }
  return value;
}

/** Checks a rank: an integer in [0, 2^32 − 1]. */
export function requireRank(what: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_U32) {
    throw new ArgumentError(what, `must be an integer in [0, ${MAX_U32}], got ${String(value)}`);
  }
  return value;
}

/**
 * The subject prefix that holds everything of one job, `shardline.<namespace>.<job>`; grant a
 * job's loaders and trainers `<prefix>.>` (or the finer per-side lists of docs/protocol.md).
 * @example
 * jobSubjectPrefix('ml', 'mnist') // 'shardline.ml.mnist'
 */
export function jobSubjectPrefix(namespace: string, job: string): string {
  return `${SUBJECT_ROOT}.${requireSubjectToken('namespace', namespace)}.${requireSubjectToken('job', job)}`;
}

/**
 * The four subjects of one rank's stream.
 * @example
 * deliverySubjects({ namespace: 'ml', job: 'mnist', rank: 3 }).data // 'shardline.ml.mnist.rank.3.data'
 */
export function deliverySubjects(scope: StreamScope): DeliverySubjects {
  const prefix = `${jobSubjectPrefix(scope.namespace ?? 'default', scope.job)}.rank.${requireRank('rank', scope.rank)}`;
  return { hello: `${prefix}.hello`, ctl: `${prefix}.ctl`, data: `${prefix}.data`, events: `${prefix}.events` };
}
