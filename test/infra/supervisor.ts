/**
 * A small supervisor for the server processes that tests start: spawn on loopback, wait for
 * readiness, stop with SIGTERM then SIGKILL, and make sure no child outlives the test process —
 * whether the test passes, fails, the process exits, or it is interrupted by a signal.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdtempSync, rmSync, type WriteStream } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** How a {@link ManagedProcess} is started and when it counts as ready. */
export interface SpawnOptions {
  /** Short name used in errors and logs, e.g. `nats-server`. */
  name: string;
  /** Absolute path of the executable. */
  command: string;
  args: readonly string[];
  /** The server's own folder: its log file (`server.log`) is written here. */
  dir: string;
  env?: NodeJS.ProcessEnv;
  /** Resolves true once the server answers; called repeatedly until then. Errors count as "not yet". */
  ready: () => Promise<boolean>;
  /** How long to wait for `ready` (default 20 s). */
  readyTimeoutMs?: number;
}

/** How a child ended. */
export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

const TAIL_LINES = 30;
const live = new Set<ChildProcess>();
const tempDirs = new Set<string>();

/** True when SHARDLINE_TEST_KEEP=1: data dirs and logs stay on disk after stop() for debugging. */
export function keepArtifacts(): boolean {
  return process.env.SHARDLINE_TEST_KEEP === '1';
}

// Last resort for children that were never stopped: the 'exit' event runs synchronously on any
// normal exit (including process.exit after a failed test), so SIGKILL is all we can do there.
function killAll(): void {
  for (const child of live) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  live.clear();
  if (!keepArtifacts()) for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
}

let handlersInstalled = false;
function installExitHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', killAll);
  // A signal would end Node without 'exit': clean up, then die of the same signal as before.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      killAll();
      process.removeListener(signal, onSignal);
      process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}

// setpriv(1) sets PR_SET_PDEATHSIG so the kernel kills the server even if this process dies of
// SIGKILL or a crash, when no JavaScript handler runs.
let setprivPath: string | null | undefined;
function setpriv(): string | null {
  if (setprivPath === undefined) {
    const probe = spawnSync('setpriv', ['--pdeathsig', 'SIGKILL', 'true'], { stdio: 'ignore' });
    setprivPath = probe.status === 0 ? 'setpriv' : null;
  }
  return setprivPath;
}

/**
 * A fresh temporary directory (`$TMPDIR/shardline-<prefix>-XXXXXX`), removed on exit unless
 * SHARDLINE_TEST_KEEP=1.
 */
export function makeTempDir(prefix: string): string {
  installExitHandlers();
  const dir = mkdtempSync(path.join(tmpdir(), `shardline-${prefix}-`));
  tempDirs.add(dir);
  return dir;
}

/** Removes a directory made by {@link makeTempDir} (kept when SHARDLINE_TEST_KEEP=1). */
export function removeTempDir(dir: string): void {
  tempDirs.delete(dir);
  if (!keepArtifacts()) rmSync(dir, { recursive: true, force: true });
}

/** A free TCP port on 127.0.0.1 (asked from the kernel, then released for the server to take). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('could not get a free port'))));
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A running server process; obtain one with {@link spawnServer}. */
export class ManagedProcess {
  readonly name: string;
  readonly pid: number;
  /** The file that receives the server's stdout and stderr. */
  readonly logFile: string;
  /** Settles when the process has exited. */
  readonly exited: Promise<ExitStatus>;
  readonly #child: ChildProcess;
  readonly #log: WriteStream;
  readonly #tail: string[] = [];
  #partial = '';
  #exit: ExitStatus | undefined;

  constructor(child: ChildProcess, name: string, logFile: string) {
    if (child.pid === undefined) throw new Error(`${name}: spawn returned no pid`);
    this.#child = child;
    this.name = name;
    this.pid = child.pid;
    this.logFile = logFile;
    this.#log = createWriteStream(logFile, { flags: 'a' });
    const onData = (chunk: Buffer): void => {
      this.#log.write(chunk);
      const lines = (this.#partial + chunk.toString('utf8')).split('\n');
      this.#partial = lines.pop() ?? '';
      this.#tail.push(...lines);
      if (this.#tail.length > TAIL_LINES) this.#tail.splice(0, this.#tail.length - TAIL_LINES);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        live.delete(child);
        this.#exit = { code, signal };
        resolve(this.#exit);
      });
    });
    // Children must not keep a finished test file alive: 'exit' handlers kill what is left.
    child.unref();
    for (const stream of [child.stdout, child.stderr]) (stream as { unref?: () => void } | null)?.unref?.();
  }

  /** Whether the process is still running. */
  get running(): boolean {
    return this.#exit === undefined;
  }

  /** The last lines the server wrote (stdout and stderr), oldest first. */
  outputTail(): string[] {
    return this.#partial === '' ? [...this.#tail] : [...this.#tail, this.#partial];
  }

  /**
   * Stops the process: SIGTERM, then SIGKILL if it is still running after `graceMs` (default 5 s).
   * Safe to call more than once.
   */
  async stop(graceMs = 5000): Promise<ExitStatus> {
    if (this.#exit === undefined) {
      // Keep the event loop alive until the child has really gone.
      this.#child.ref();
      this.#child.kill('SIGTERM');
      const timer = setTimeout(() => this.#child.kill('SIGKILL'), graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    await new Promise<void>((resolve) => this.#log.end(resolve));
    return this.exited;
  }
}

/**
 * Spawns a server and waits until `ready()` answers true.
 * @throws Error with the server's exit status, its last output lines and its log file when it
 * exits early or is not ready within the timeout (the process is killed first).
 * @example
 * const proc = await spawnServer({ name: 'x', command: '/bin/x', args: [], dir, ready: () => ping() });
 * try { ... } finally { await proc.stop(); }
 */
export async function spawnServer(options: SpawnOptions): Promise<ManagedProcess> {
  installExitHandlers();
  const timeoutMs = options.readyTimeoutMs ?? 20_000;
  const wrapper = setpriv();
  const [command, args] =
    wrapper === null
      ? [options.command, [...options.args]]
      : [wrapper, ['--pdeathsig', 'SIGKILL', options.command, ...options.args]];
  const child = spawn(command, args, {
    cwd: options.dir,
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
  // 'spawn' or 'error' comes first; a bad path is reported here rather than as a readiness timeout.
  const first = await Promise.race([
    new Promise<null>((resolve) => child.once('spawn', () => resolve(null))),
    spawnError,
  ]);
  if (first !== null) {
    live.delete(child);
    throw new Error(`${options.name}: could not start ${options.command}: ${first.message}`);
  }
  const proc = new ManagedProcess(child, options.name, path.join(options.dir, 'server.log'));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!proc.running) {
      const status = await proc.exited;
      throw startError(proc, options, `exited before it was ready (${describe(status)})`);
    }
    let ok = false;
    try {
      ok = await options.ready();
    } catch {
      // not listening yet
    }
    if (ok && proc.running) return proc;
    if (Date.now() > deadline) {
      await proc.stop(1000);
      throw startError(proc, options, `was not ready within ${timeoutMs} ms`);
    }
    await sleep(50);
  }
}

function describe(status: ExitStatus): string {
  return status.signal !== null ? `signal ${status.signal}` : `exit code ${status.code}`;
}

function startError(proc: ManagedProcess, options: SpawnOptions, what: string): Error {
  const tail = proc.outputTail().join('\n');
  return new Error(
    `${options.name} ${what}.\ncommand: ${options.command} ${options.args.join(' ')}\n` +
      `log: ${proc.logFile}\nlast output:\n${tail === '' ? '(none)' : tail}`,
  );
}

/** GET `url` with a per-request timeout; resolves to the response. */
export async function httpGet(url: string, timeoutMs = 2000): Promise<Response> {
  return fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
}
