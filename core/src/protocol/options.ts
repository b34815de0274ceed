/**
 * Small helpers shared by the NATS adapters' option handling: id checks, defaults from the host
 * name, and AbortSignal wiring.
 */
import { ArgumentError } from '../errors.ts';
import { ID_PATTERN } from './messages.ts';

/** Registers `abort` on `signal`; returns the function that unregisters it. */
export function onAbort(signal: AbortSignal | undefined, abort: () => void): () => void {
  if (signal === undefined) return () => {};
  signal.addEventListener('abort', abort, { once: true });
  return () => signal.removeEventListener('abort', abort);
}

/** Checks a client, loader or host id: 1 to 128 printable ASCII characters, no spaces. */
export function requireId(name: string, value: unknown): string {
  if (typeof value !== 'string' || !ID_PATTERN.test(value)) {
    throw new ArgumentError(name, `must be 1 to 128 printable ASCII characters without spaces, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** A default id from a host name: characters outside printable ASCII become '_'. */
export function safeId(text: string): string {
  const id = text.replace(/[^\x21-\x7e]/g, '_').slice(0, 128);
  return id.length > 0 ? id : 'unknown';
}

/** `o` without its undefined fields, so that spreading it over defaults keeps the defaults. */
export function withoutUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
