/**
 * A bound on the requests one store has in flight, sized like its connection pool: a request
 * waits here (abortably) rather than in the HTTP agent's queue, where the SDK's request timeout
 * would already be running.
 */
import { ArgumentError } from '@shardline/core';

/** Releases a slot; calling it again does nothing. */
export type Release = () => void;

/** A counting semaphore with first-come, first-served waiters that an AbortSignal can withdraw. */
export class RequestSlots {
  readonly capacity: number;
  #inUse = 0;
  readonly #waiting: Array<() => void> = [];

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new ArgumentError('capacity', `must be an integer ≥ 1, got ${capacity}`);
    this.capacity = capacity;
  }

  /** Slots taken now. */
  get inUse(): number {
    return this.#inUse;
  }

  /** Callers waiting for a slot. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /**
   * Resolves to a release function once a slot is free; rejects with `signal.reason` if the
   * signal aborts first (the caller then holds nothing).
   */
  acquire(signal?: AbortSignal): Promise<Release> {
    if (signal?.aborted === true) return Promise.reject(signal.reason);
    if (this.#inUse < this.capacity) {
      this.#inUse += 1;
      return Promise.resolve(this.#releaser());
    }
    return new Promise<Release>((resolve, reject) => {
      const grant = (): void => {
        signal?.removeEventListener('abort', onAbort);
        this.#inUse += 1;
        resolve(this.#releaser());
      };
      const onAbort = (): void => {
        const at = this.#waiting.indexOf(grant);
        if (at >= 0) this.#waiting.splice(at, 1);
        reject(signal!.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiting.push(grant);
    });
  }

  #releaser(): Release {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#inUse -= 1;
      this.#waiting.shift()?.();
    };
  }
}
