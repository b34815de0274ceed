/**
 * FixedRecordFileDataset: a binary file of equal-size records (an optional header, then record
 * after record, little-endian), read one record at a time with positional reads. This replaces
 * the memory-mapped dataset of the PyTorch guide: nothing is mapped or cached, so files far
 * larger than memory work, and an optional labels file holds one value per record.
 */
import fs from 'node:fs';
import { ArgumentError, ClosedError, DatasetError, FormatError } from '../errors.ts';
import { isDType, numel, typedArrayConstructor } from '../tensor.ts';
import type { DType, Tensor, TypedArray } from '../tensor.ts';
import { normalizeIndex, requireInt } from '../validate.ts';
import type { Dataset } from './dataset.ts';

export interface FixedRecordFileOptions {
  /** The data file. */
  path: string;
  /** Element type of a record. */
  dtype: DType;
  /** Shape of one record (e.g. `[28, 28]`); `[]` for scalar records. */
  sampleShape: readonly number[];
  /** Bytes to skip at the start of the data file (default 0). */
  headerBytes?: number;
  /** A headerless file with exactly one `labelsDtype` value per record. */
  labelsPath?: string;
  /** Element type of the labels (default 'int64'). */
  labelsDtype?: DType;
}

/** One record: its data, and its label (a scalar tensor) when a labels file was given. */
export interface FixedRecord {
  data: Tensor;
  label?: Tensor;
}

interface OpenFile {
  readonly path: string;
  readonly fd: number;
}

/**
 * A map-style dataset over a fixed-record binary file. The constructor opens the files (and
 * checks their sizes); `get(i)` reads exactly one record, off the event loop, into a fresh
 * typed array; `getSync(i)` does the same with a blocking read. Call `close()` when done.
 *
 * @example
 * using ds = new FixedRecordFileDataset({ path: 'images.bin', dtype: 'uint8', sampleShape: [28, 28],
 *   headerBytes: 16, labelsPath: 'labels.bin', labelsDtype: 'uint8' });
 * const { data, label } = await ds.get(0);
 */
export class FixedRecordFileDataset implements Dataset<FixedRecord> {
  readonly path: string;
  readonly dtype: DType;
  readonly sampleShape: readonly number[];
  readonly headerBytes: number;
  /** Bytes per record. */
  readonly recordBytes: number;
  readonly labelsPath: string | undefined;
  readonly labelsDtype: DType;
  readonly length: number;
  #data: OpenFile;
  #labels: OpenFile | undefined;
  #closed = false;
  #pending = 0;

  constructor(options: FixedRecordFileOptions) {
    if (typeof options !== 'object' || options === null) throw new ArgumentError('options', 'must be an object');
    const path = requirePath('path', options.path);
    if (!isDType(options.dtype)) throw new ArgumentError('dtype', `unknown dtype ${JSON.stringify(options.dtype)}`);
    if (!Array.isArray(options.sampleShape)) throw new ArgumentError('sampleShape', 'must be an array of integers ≥ 1');
    options.sampleShape.forEach((d, k) => requireInt(`sampleShape[${k}]`, d, { min: 1 }));
    const headerBytes = requireInt('headerBytes', options.headerBytes ?? 0);
    const labelsDtype = options.labelsDtype ?? 'int64';
    if (!isDType(labelsDtype)) throw new ArgumentError('labelsDtype', `unknown dtype ${JSON.stringify(labelsDtype)}`);
    const labelsPath = options.labelsPath === undefined ? undefined : requirePath('labelsPath', options.labelsPath);

    this.path = path;
    this.dtype = options.dtype;
    this.sampleShape = [...options.sampleShape];
    this.headerBytes = headerBytes;
    this.recordBytes = numel(this.sampleShape) * typedArrayConstructor(this.dtype).BYTES_PER_ELEMENT;
    this.labelsPath = labelsPath;
    this.labelsDtype = labelsDtype;

    this.#data = openFile('path', path);
    try {
      const size = fs.fstatSync(this.#data.fd).size;
      const body = size - headerBytes;
      if (body < 0 || body % this.recordBytes !== 0) {
        throw new FormatError(
          `${path}: file size ${size} bytes minus header ${headerBytes} bytes is not a whole number of ` +
            `${this.recordBytes}-byte records (${this.dtype} [${this.sampleShape.join(', ')}]); ` +
            `${body < 0 ? 'the file is shorter than its header' : `${body % this.recordBytes} bytes left over`}`,
        );
      }
      this.length = body / this.recordBytes;
      if (labelsPath !== undefined) {
        this.#labels = openFile('labelsPath', labelsPath);
        const labelBytes = typedArrayConstructor(labelsDtype).BYTES_PER_ELEMENT;
        const labelsSize = fs.fstatSync(this.#labels.fd).size;
        if (labelsSize !== this.length * labelBytes) {
          throw new FormatError(
            `${labelsPath}: labels file has ${labelsSize} bytes but ${this.length} records of ${labelsDtype} ` +
              `need ${this.length * labelBytes} bytes`,
          );
        }
      }
    } catch (error) {
      this.#closeFiles();
      throw error;
    }
  }

  /** Reads record `index` (negative counts from the end) without blocking the event loop. */
  async get(index: number): Promise<FixedRecord> {
    const i = this.#check(index);
    this.#pending++;
    try {
      const data = await this.#read(this.#data, this.dtype, numel(this.sampleShape), this.headerBytes + i * this.recordBytes, i);
      const record: FixedRecord = { data: { dtype: this.dtype, shape: [...this.sampleShape], data } };
      if (this.#labels !== undefined) {
        const size = typedArrayConstructor(this.labelsDtype).BYTES_PER_ELEMENT;
        const label = await this.#read(this.#labels, this.labelsDtype, 1, i * size, i);
        record.label = { dtype: this.labelsDtype, shape: [], data: label };
      }
      return record;
    } finally {
      // A close() during the read deferred releasing the descriptors to the last reader, so a
      // reused descriptor number can never be read by mistake.
      if (--this.#pending === 0 && this.#closed) this.#closeFiles();
    }
  }

  /** Reads record `index` with a blocking positional read. */
  getSync(index: number): FixedRecord {
    const i = this.#check(index);
    const data = this.#readSync(this.#data, this.dtype, numel(this.sampleShape), this.headerBytes + i * this.recordBytes, i);
    const record: FixedRecord = { data: { dtype: this.dtype, shape: [...this.sampleShape], data } };
    if (this.#labels !== undefined) {
      const size = typedArrayConstructor(this.labelsDtype).BYTES_PER_ELEMENT;
      record.label = { dtype: this.labelsDtype, shape: [], data: this.#readSync(this.#labels, this.labelsDtype, 1, i * size, i) };
    }
    return record;
  }

  /** Releases the file descriptors (after reads in flight finish). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#pending === 0) this.#closeFiles();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  get closed(): boolean {
    return this.#closed;
  }

  #check(index: number): number {
    if (this.#closed) throw new ClosedError(`${this.path}: the dataset was closed`);
    return normalizeIndex(index, this.length);
  }

  #read(file: OpenFile, dtype: DType, count: number, position: number, index: number): Promise<TypedArray> {
    const out = new (typedArrayConstructor(dtype))(count);
    const bytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    return new Promise((resolve, reject) => {
      fs.read(file.fd, bytes, 0, bytes.length, position, (error, bytesRead) => {
        if (error) reject(readError(file, index, position, error));
        else if (bytesRead !== bytes.length) reject(shortRead(file, index, position, bytesRead, bytes.length));
        else resolve(out);
      });
    });
  }

  #readSync(file: OpenFile, dtype: DType, count: number, position: number, index: number): TypedArray {
    const out = new (typedArrayConstructor(dtype))(count);
    const bytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    let bytesRead: number;
    try {
      bytesRead = fs.readSync(file.fd, bytes, 0, bytes.length, position);
    } catch (error) {
      throw readError(file, index, position, error);
    }
    if (bytesRead !== bytes.length) throw shortRead(file, index, position, bytesRead, bytes.length);
    return out;
  }

  #closeFiles(): void {
    for (const file of [this.#data, this.#labels]) {
      if (file === undefined) continue;
      try {
        fs.closeSync(file.fd);
      } catch {
        // Already closed: nothing left to release.
      }
    }
    this.#labels = undefined;
  }
}

function requirePath(name: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new ArgumentError(name, `must be a non-empty file path, got ${JSON.stringify(value) ?? String(value)}`);
  }
  return value;
}

function openFile(name: string, path: string): OpenFile {
  try {
    return { path, fd: fs.openSync(path, 'r') };
  } catch (error) {
    throw new ArgumentError(name, `cannot open ${path}: ${(error as Error).message}`, { cause: error });
  }
}

function readError(file: OpenFile, index: number, position: number, error: unknown): DatasetError {
  return new DatasetError(`${file.path}: reading record ${index} at byte ${position} failed: ${(error as Error).message}`, {
    cause: error,
    index,
  });
}

function shortRead(file: OpenFile, index: number, position: number, got: number, wanted: number): DatasetError {
  return new DatasetError(
    `${file.path}: record ${index} at byte ${position} is truncated: read ${got} of ${wanted} bytes (the file shrank after it was opened?)`,
    { index },
  );
}
