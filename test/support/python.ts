/**
 * The Python that interop tests run: a venv with the reference `safetensors` package, numpy,
 * nats-py and CPU torch (Debian's python3-torch), made and cached by scripts/setup-python.sh.
 * Tests that need it fail (never skip) when it cannot be had, with a message that names the
 * command to run.
 *
 * Also a command line: `npx node test/support/python.ts SCRIPT [ARGS...]` runs a script with that
 * Python (used to regenerate the wire format test vectors).
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file is test/support/python.ts). */
export const REPO_ROOT = path.resolve(import.meta.dirname, '..', '..');
const SETUP = path.join(REPO_ROOT, 'scripts', 'setup-python.sh');
const SETUP_COMMAND = 'bash scripts/setup-python.sh';

let cached: string | undefined;

// Where scripts/setup-python.sh puts its venvs (`${SHARDLINE_CACHE:-$HOME/.cache/shardline}`).
function cacheDir(): string {
  return process.env.SHARDLINE_CACHE || path.join(homedir(), '.cache', 'shardline');
}

// The venv's folder is keyed by the pins in the script: ask the script, so the two never disagree.
function venvPython(): string {
  const result = spawnSync('bash', [SETUP, '--print-venv'], { cwd: REPO_ROOT, encoding: 'utf8' });
  const venv = result.stdout?.trim() ?? '';
  if (result.status !== 0 || venv === '') {
    throw new Error(`\`bash ${SETUP} --print-venv\` failed (${result.error?.message ?? `exit code ${result.status}`}): ${result.stderr ?? ''}`);
  }
  return path.join(venv, 'bin', 'python');
}

/**
 * Path of the interop venv's python. Runs `bash scripts/setup-python.sh` first (instant when the
 * venv exists; otherwise it installs Debian's python3-torch and creates the venv from PyPI). Throws an Error naming that command when the
 * venv cannot be made.
 */
export function pythonPath(): string {
  if (cached !== undefined) return cached;
  // Test files run in parallel, and two setups racing on a missing venv would delete each
  // other's work: hold a lock around the script where flock(1) exists.
  const cache = cacheDir();
  mkdirSync(cache, { recursive: true });
  const flock = spawnSync('flock', ['--version'], { stdio: 'ignore' }).status === 0;
  const [command, args] = flock
    ? ['flock', [path.join(cache, 'setup-python.lock'), 'bash', SETUP]]
    : ['bash', [SETUP]];
  const setup = spawnSync(command, args, { cwd: REPO_ROOT, encoding: 'utf8', timeout: 10 * 60_000 });
  if (setup.error !== undefined || setup.status !== 0) {
    const why = setup.error?.message ?? `exit code ${setup.status ?? setup.signal}`;
    throw new Error(
      `the Python interop environment is missing and \`${SETUP_COMMAND}\` failed (${why}). ` +
        `Run \`${SETUP_COMMAND}\` in ${REPO_ROOT} and fix what it reports (it needs python3 with venv and ` +
        `access to PyPI).\n${setup.stderr ?? ''}${setup.stdout ?? ''}`,
    );
  }
  const python = venvPython();
  try {
    accessSync(python, constants.X_OK);
  } catch (cause) {
    throw new Error(`\`${SETUP_COMMAND}\` succeeded but ${python} is not executable; delete its venv folder and run it again`, {
      cause,
    });
  }
  cached = python;
  return python;
}

export interface RunPythonOptions {
  /** Arguments after the script (sys.argv[1:]). */
  readonly args?: readonly string[];
  /** Written to the process's stdin. */
  readonly input?: string | Uint8Array;
  /** Kill the process after this many milliseconds (default 60 000). */
  readonly timeoutMs?: number;
  readonly cwd?: string;
}

function run(argv: readonly string[], options: RunPythonOptions): string {
  const python = pythonPath();
  const result = spawnSync(python, [...argv, ...(options.args ?? [])], {
    cwd: options.cwd ?? REPO_ROOT,
    input: options.input,
    encoding: 'utf8',
    timeout: options.timeoutMs ?? 60_000,
    maxBuffer: 256 * 1024 * 1024,
    env: { ...process.env, PYTHONIOENCODING: 'utf-8', PYTHONDONTWRITEBYTECODE: '1' },
  });
  if (result.error !== undefined) throw new Error(`python failed to run: ${result.error.message}`, { cause: result.error });
  if (result.status !== 0) {
    throw new Error(`python exited with ${result.status ?? result.signal}:\n${result.stderr}`);
  }
  return result.stdout;
}

/**
 * Runs a Python snippet with the interop venv and returns its stdout. Throws with the stderr
 * when it exits non-zero.
 * @example
 * const version = runPython('import safetensors; print(safetensors.__version__)').trim();
 */
export function runPython(code: string, options: RunPythonOptions = {}): string {
  return run(['-c', code], options);
}

/** Runs a Python script file with the interop venv and returns its stdout. */
export function runPythonFile(file: string, options: RunPythonOptions = {}): string {
  return run([file], options);
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [script, ...args] = process.argv.slice(2);
  if (script === undefined) {
    console.error('usage: node test/support/python.ts SCRIPT [ARGS...]');
    process.exit(2);
  }
  const result = spawnSync(pythonPath(), [script, ...args], { stdio: 'inherit' });
  process.exit(result.status ?? 1);
}
