/**
 * Removes shared-memory segments when the process ends, since `/dev/shm` outlives processes and
 * holds RAM. Open rings register a synchronous cleanup here; it runs on `exit` and on SIGTERM,
 * SIGINT and SIGHUP. The signal handlers never swallow a signal: when no other listener handles
 * it, the handler cleans up, removes itself and raises the signal again, so the process still
 * dies of it (exit status 128 + n, as a parent expects). When the application listens to the
 * signal itself it decides what happens; the segments then go on `exit`. SIGKILL cannot be
 * caught: the next ring of the node reclaims those segments (ShmRing.create).
 */

type Cleanup = () => void;

const cleanups = new Set<Cleanup>();
const SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;
type HandledSignal = (typeof SIGNALS)[number];

function runAll(): void {
  for (const cleanup of [...cleanups]) {
    cleanups.delete(cleanup);
    try {
      cleanup();
    } catch {
      // Best effort at exit: one failed unlink must not keep the others from running.
    }
  }
}

function onSignal(signal: HandledSignal): void {
  // Another listener owns this signal: leave the decision (and the exit) to it.
  if (process.listenerCount(signal) > 1) return;
  runAll();
  uninstall();
  process.kill(process.pid, signal);
}

const handlers = new Map<HandledSignal, () => void>(SIGNALS.map((s) => [s, () => onSignal(s)]));
let installed = false;

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', runAll);
  // First in line, so that it still sees an application's `once` listener, which Node removes
  // just before calling it: counted after it, the application would look absent and the signal
  // would be raised again under its feet.
  for (const [signal, handler] of handlers) process.prependListener(signal, handler);
}

function uninstall(): void {
  if (!installed) return;
  installed = false;
  process.removeListener('exit', runAll);
  // With no listener left, Node restores the signal's default action (termination).
  for (const [signal, handler] of handlers) process.removeListener(signal, handler);
}

/**
 * Runs `cleanup` (synchronous, best effort) when the process exits or dies of SIGTERM, SIGINT or
 * SIGHUP. Returns a function that unregisters it; the handlers go away with the last one.
 */
export function onProcessExit(cleanup: Cleanup): () => void {
  cleanups.add(cleanup);
  install();
  return () => {
    cleanups.delete(cleanup);
    if (cleanups.size === 0) uninstall();
  };
}
