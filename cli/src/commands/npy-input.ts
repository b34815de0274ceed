/**
 * `.npy` input of `shardline write`: one file, or a directory of them. Each file is a column named
 * after the file (`x.npy` → `x`), and row i of every array (its first axis) makes sample i, so a
 * directory holding `x.npy` (N × 3 × 32 × 32) and `y.npy` (N) gives N samples
 * `{ x: ndarray:<dtype>:3,32,32, y: <dtype> }`. Every array must have the same number of rows.
 */
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { ArgumentError, FormatError } from '@shardline/core';
import { type InputSample, type SampleInput, compareCodePoints } from './inputs.ts';
import { NpyFile, type NpyRow } from './npy.ts';

/**
 * Opens `input` (a `.npy` file, or a directory whose `*.npy` files are the columns) and checks
 * every header.
 * @throws ArgumentError naming `<input>` when there is no `.npy` file or two map to one column;
 *   FormatError naming the file for a bad header, a refused dtype, or row counts that disagree.
 */
export async function openNpyInput(input: string): Promise<SampleInput> {
  const info = await stat(input);
  let files: string[];
  if (info.isDirectory()) {
    files = (await readdir(input, { withFileTypes: true }))
      .filter((e) => (e.isFile() || e.isSymbolicLink()) && e.name.toLowerCase().endsWith('.npy'))
      .map((e) => path.join(input, e.name))
      .sort(compareCodePoints);
    if (files.length === 0) throw new ArgumentError('<input>', `${input} holds no .npy file`);
  } else {
    files = [input];
  }
  const arrays: { column: string; file: NpyFile }[] = [];
  const columns: Record<string, string> = {};
  for (const file of files) {
    const base = path.basename(file);
    const column = base.toLowerCase().endsWith('.npy') ? base.slice(0, -'.npy'.length) : base;
    if (column === '') throw new ArgumentError('<input>', `${file} has no name before ".npy" to name its column`);
    if (Object.hasOwn(columns, column)) throw new ArgumentError('<input>', `two files make the column ${JSON.stringify(column)} (names differ only in the case of ".npy")`);
    const npy = await NpyFile.open(file);
    const first = arrays[0];
    if (first !== undefined && npy.length !== first.file.length) {
      throw new FormatError(`${path.basename(file)} has ${npy.length} rows but ${path.basename(first.file.path)} has ${first.file.length}: every array must have one row per sample`);
    }
    arrays.push({ column, file: npy });
    columns[column] = npy.mdsEncoding;
  }
  const rows = arrays[0]!.file.length;
  return {
    kind: 'npy',
    path: input,
    columns,
    columnsInferred: false,
    progress: { unit: 'samples', total: rows },
    details: { arrays: Object.fromEntries(arrays.map((a) => [a.column, { descr: a.file.header.descr, shape: a.file.header.shape }])) },
    async *samples(): AsyncGenerator<InputSample> {
      const iterators = arrays.map((a) => a.file.rows()[Symbol.asyncIterator]());
      try {
        for (let row = 0; row < rows; row++) {
          const values = await Promise.all(iterators.map((it) => it.next()));
          const sample: Record<string, NpyRow> = {};
          values.forEach((v, k) => {
            // Headers were checked against the file sizes, so every array has this row.
            Object.defineProperty(sample, arrays[k]!.column, { value: v.value as NpyRow, enumerable: true, writable: true, configurable: true });
          });
          yield { sample, where: `row ${row}`, done: row + 1 };
        }
      } finally {
        await Promise.all(iterators.map((it) => it.return?.(undefined)));
      }
    },
  };
}
