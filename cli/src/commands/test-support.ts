/**
 * Helpers of the dataset commands' tests: the CLI run as a subprocess (as users run it), temp
 * folders removed after each test, a dataset read back whole, and a `.npy` encoder that follows
 * NumPy's format description byte for byte.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';
import { MDSDataset, type MDSSample } from '@shardline/core';

const MAIN = fileURLToPath(new URL('../main.ts', import.meta.url));

/** What a run of the CLI printed and how it exited. */
export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs `shardline ...args` in a subprocess (asynchronously, so servers in this process keep
 * answering), with warnings-only logs and `env` added to the environment.
 */
export function shardline(args: readonly string[], env: Readonly<Record<string, string>> = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], { env: { ...process.env, SHARDLINE_LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The last line of stdout as JSON (the `--json` result). */
export function lastJson<T = Record<string, unknown>>(result: CliResult): T {
  return JSON.parse(result.stdout.trim().split('\n').at(-1)!) as T;
}

/** A fresh temp folder, removed when the test ends. */
export function tempDir(t: TestContext, name = 'cli'): string {
  const dir = mkdtempSync(path.join(tmpdir(), `shardline-${name}-`));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Every sample of the MDS dataset in `dir`, in order, hashes verified. */
export async function readDataset(dir: string): Promise<MDSSample[]> {
  const ds = await MDSDataset.open(dir, { verifyHashes: true });
  const out: MDSSample[] = [];
  for await (const s of ds) out.push(s);
  return out;
}

/** Options of {@link encodeNpy}. */
export interface NpyOptions {
  /** Format version (default 1; 2 and 3 have a 4-byte header length). */
  readonly version?: 1 | 2 | 3;
  readonly fortranOrder?: boolean;
  /** The header dict as written, replacing the one made from descr, order and shape. */
  readonly dict?: string;
}

/**
 * A `.npy` file as np.save writes it: magic, version, header length, the header dict padded with
 * spaces to a multiple of 64 bytes and ended by '\n', then `data`.
 */
export function encodeNpy(descr: string, shape: readonly number[], data: Uint8Array, options: NpyOptions = {}): Buffer {
  const version = options.version ?? 1;
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  const dict = options.dict ?? `{'descr': '${descr}', 'fortran_order': ${options.fortranOrder === true ? 'True' : 'False'}, 'shape': ${shapeText}, }`;
  const lengthBytes = version === 1 ? 2 : 4;
  const prefix = 6 + 2 + lengthBytes;
  const unpadded = Buffer.byteLength(dict, version === 3 ? 'utf8' : 'latin1') + 1;
  const header = dict + ' '.repeat((64 - ((prefix + unpadded) % 64)) % 64) + '\n';
  const headerBytes = Buffer.from(header, version === 3 ? 'utf8' : 'latin1');
  const out = Buffer.alloc(prefix + headerBytes.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  if (version === 1) out.writeUInt16LE(headerBytes.length, 8);
  else out.writeUInt32LE(headerBytes.length, 8);
  out.set(headerBytes, prefix);
  out.set(data, prefix + headerBytes.length);
  return out;
}

/** The bytes of a typed array. */
export function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}
