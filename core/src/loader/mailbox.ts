/**
 * A queue of events with one waiting reader: the DataLoader's epoch loop reads worker messages,
 * exits, aborts and close requests from one place, in arrival order, with an optional deadline.
 */

export const TIMED_OUT: unique symbol = Symbol('timed out');

export class Mailbox<E> {
  #queue: E[] = [];
  #head = 0;
  #waiter: ((e: E) => void) | null = null;

  push(event: E): void {
    const waiter = this.#waiter;
    if (waiter !== null) {
      this.#waiter = null;
      waiter(event);
    } else {
      this.#queue.push(event);
    }
  }

  /** The next event, or TIMED_OUT if none arrives within `ms` (no limit when undefined). */
  take(ms?: number): Promise<E | typeof TIMED_OUT> {
    if (this.#head < this.#queue.length) {
      const e = this.#queue[this.#head++]!;
      if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
        this.#queue = this.#queue.slice(this.#head);
        this.#head = 0;
      }
      return Promise.resolve(e);
    }
    if (this.#waiter !== null) throw new Error('Mailbox has a single reader');
    return new Promise((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      this.#waiter = (e) => {
        if (timer !== undefined) clearTimeout(timer);
        resolve(e);
      };
      if (ms !== undefined) {
        timer = setTimeout(() => {
          this.#waiter = null;
          resolve(TIMED_OUT);
        }, Math.max(0, ms));
      }
    });
  }
}
