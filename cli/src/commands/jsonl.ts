/**
 * JSONL input of `shardline write`: one JSON object per line, one sample per object. Columns come
 * from `--columns`, or are inferred from the first line: an integer (a number written without
 * fraction or exponent) → int64, any other number → float64, a string → str, anything else
 * (bool, null, array, object) → json. Integers beyond 2^53 keep every digit (as bigint).
 *
 * Lines are read as bytes and split on '\n' (a trailing '\r' is dropped, blank lines skipped),
 * each at most {@link MAX_JSONL_LINE_BYTES} long, so a file without newlines cannot exhaust
 * memory. Every error names the file and the line number.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { ArgumentError, FormatError } from '@shardline/core';
import type { InputSample, SampleInput } from './inputs.ts';

/** The longest line read: 256 MiB (a sample held in memory as text, then as values). */
export const MAX_JSONL_LINE_BYTES = 256 * 1024 * 1024;

/** A line of a JSONL file. */
export interface JsonlLine {
  /** 1-based line number. */
  readonly line: number;
  readonly text: string;
  /** Bytes of the file consumed through this line (its newline included). */
  readonly bytesRead: number;
}

/** Options of {@link readJsonlLines}. */
export interface ReadJsonlLinesOptions {
  /** The longest line accepted (default {@link MAX_JSONL_LINE_BYTES}). */
  readonly maxLineBytes?: number;
  /** Bytes per read (default 1 MiB). */
  readonly chunkBytes?: number;
}

/**
 * The non-blank lines of a UTF-8 file, with their numbers.
 * @throws FormatError naming the file and line for invalid UTF-8 or a line over `maxLineBytes`.
 */
export async function* readJsonlLines(file: string, options: ReadJsonlLinesOptions = {}): AsyncGenerator<JsonlLine> {
  const { maxLineBytes = MAX_JSONL_LINE_BYTES, chunkBytes = 1 << 20 } = options;
  const where = path.basename(file);
  // ignoreBOM keeps a U+FEFF in the text: only the file's first line may start with a BOM to drop.
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  let parts: Buffer[] = [];
  let pending = 0;
  let line = 0;
  let bytesRead = 0;
  const tooLong = (): FormatError => new FormatError(`${where}: line ${line + 1} is longer than ${maxLineBytes} bytes`);
  const finish = (last: Buffer): JsonlLine | undefined => {
    const bytes = parts.length === 0 ? last : Buffer.concat([...parts, last]);
    parts = [];
    pending = 0;
    line++;
    let text: string;
    try {
      text = decoder.decode(bytes);
    } catch (cause) {
      throw new FormatError(`${where}: line ${line} is not valid UTF-8`, { cause });
    }
    if (line === 1 && text.startsWith('\uFEFF')) text = text.slice(1);
    if (text.endsWith('\r')) text = text.slice(0, -1);
    return text.trim() === '' ? undefined : { line, text, bytesRead };
  };
  for await (const chunk of createReadStream(file, { highWaterMark: chunkBytes }) as AsyncIterable<Buffer>) {
    let start = 0;
    for (let nl = chunk.indexOf(10, start); nl !== -1; nl = chunk.indexOf(10, start)) {
      if (pending + nl - start > maxLineBytes) throw tooLong();
      bytesRead += nl - start + 1;
      const next = finish(chunk.subarray(start, nl));
      start = nl + 1;
      if (next !== undefined) yield next;
    }
    if (pending + chunk.length - start > maxLineBytes) throw tooLong();
    if (start < chunk.length) {
      parts.push(chunk.subarray(start));
      pending += chunk.length - start;
      bytesRead += chunk.length - start;
    }
  }
  if (pending > 0) {
    const last = finish(Buffer.alloc(0));
    if (last !== undefined) yield last;
  }
}

/** A parsed line: its object, and which of its top-level keys were written as integers. */
export interface JsonlObject {
  readonly value: Record<string, unknown>;
  readonly integerKeys: ReadonlySet<string>;
}

const INTEGER_SOURCE = /^-?\d+$/;

/**
 * Parses one line as a JSON object. Integers outside the safe range become bigints (every digit
 * kept); the keys of the object whose values were written as integers are reported, for inference.
 * @param where names the line in errors, e.g. `data.jsonl: line 7`.
 * @throws FormatError for invalid JSON or a value that is not an object.
 */
export function parseJsonlObject(text: string, where: string): JsonlObject {
  const integers = new Map<unknown, Set<string>>();
  // Node 24's JSON.parse passes each primitive's source text, so "1" and "1.0" can be told apart.
  const reviver = function (this: unknown, key: string, value: unknown, context?: { source?: string }): unknown {
    if (typeof value !== 'number' || context?.source === undefined || !INTEGER_SOURCE.test(context.source)) return value;
    let keys = integers.get(this);
    if (keys === undefined) integers.set(this, (keys = new Set()));
    keys.add(key);
    return Number.isSafeInteger(value) ? value : BigInt(context.source);
  };
  let value: unknown;
  try {
    value = JSON.parse(text, reviver as (this: unknown, key: string, value: unknown) => unknown);
  } catch (cause) {
    throw new FormatError(`${where}: invalid JSON (${(cause as Error).message})`, { cause });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    const what = value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`;
    throw new FormatError(`${where}: must be a JSON object (one sample), got ${what}`);
  }
  return { value: value as Record<string, unknown>, integerKeys: integers.get(value) ?? new Set() };
}

/** The columns a first line implies (see the module comment). */
export function inferJsonlColumns({ value, integerKeys }: JsonlObject): Record<string, string> {
  const columns: Record<string, string> = {};
  for (const [key, v] of Object.entries(value)) {
    let encoding = 'json';
    if (typeof v === 'bigint' || (typeof v === 'number' && integerKeys.has(key))) encoding = 'int64';
    else if (typeof v === 'number') encoding = 'float64';
    else if (typeof v === 'string') encoding = 'str';
    Object.defineProperty(columns, key, { value: encoding, enumerable: true, writable: true, configurable: true });
  }
  return columns;
}

/**
 * Opens a JSONL file: with `columns` as given, or inferred from the first non-blank line.
 * @throws ArgumentError naming `<input>` when it is not a file or is empty and no columns are
 *   given; FormatError naming the line when the first line is not an object.
 */
export async function openJsonlInput(file: string, columns?: Readonly<Record<string, string>>): Promise<SampleInput> {
  const info = await stat(file);
  if (!info.isFile()) throw new ArgumentError('<input>', `${file} is not a file, which --from jsonl needs`);
  const name = path.basename(file);
  let chosen = columns;
  if (chosen === undefined) {
    for await (const { line, text } of readJsonlLines(file)) {
      chosen = inferJsonlColumns(parseJsonlObject(text, `${name}: line ${line}`));
      break;
    }
    if (chosen === undefined) throw new ArgumentError('<input>', `${file} has no line to infer columns from; pass --columns name:encoding,...`);
    if (Object.keys(chosen).length === 0) throw new FormatError(`${name}: line 1 is an empty object: no column to infer; pass --columns`);
  }
  return {
    kind: 'jsonl',
    path: file,
    columns: chosen,
    columnsInferred: columns === undefined,
    progress: { unit: 'bytes', total: info.size },
    details: {},
    async *samples(): AsyncGenerator<InputSample> {
      for await (const { line, text, bytesRead } of readJsonlLines(file)) {
        yield { sample: parseJsonlObject(text, `${name}: line ${line}`).value, where: `line ${line}`, done: bytesRead };
      }
    },
  };
}
