/**
 * A strict, streaming reader of tar archives, the container of WebDataset shards. It reads the
 * formats shards come in — POSIX ustar and pax, GNU (long names), old v7 — and reports for each
 * entry where its headers and its data lie in the archive, which is what the random-access index
 * records. tar-stream's extractor is not used here because it cannot say where an entry's
 * extension headers start and accepts malformed numbers (`parseInt` stops at the first bad
 * digit); a header that lies must not slip into an index.
 *
 * Every header is checked, and anything doubtful is a FormatError naming the shard, the offset
 * and the entry: a bad checksum (a compressed or non-tar file), numbers that are not octal or
 * base-256, negative or unsafe sizes, data past the end of the shard, truncation anywhere
 * (mid-header, mid-data, or a missing end-of-archive block), oversized extension headers,
 * malformed pax records, sparse and multi-volume entries (their data is not the file's bytes),
 * links or directories that declare data (readers disagree on whether it follows), and unsafe
 * names (see names.ts). Memory stays bounded by the largest entry read, never by a size a header
 * merely claims.
 *
 * Layout rules followed (those of Python's `tarfile`, which the reference WebDataset reader uses):
 * the archive ends at the first all-zero block (bytes after it are ignored); the ustar `prefix`
 * extends the name except in GNU headers; a pax `path` or GNU long name (`L`) replaces the name of
 * the next entry and a pax `size` its size; regular files are types `0`, NUL and `7`; a NUL-type
 * entry whose name ends in '/' is a directory (v7); unknown types are skipped with their data.
 */
import { AbortError, ArgumentError, FormatError } from '../../errors.ts';
import { MAX_NAME_BYTES, checkMemberName } from './names.ts';

/** Size of a tar block: headers are one block, data is padded to a whole number of blocks. */
export const BLOCK = 512;

/** Largest pax or GNU long-name header accepted (bytes of its data). */
export const MAX_EXTENSION_BYTES = 1024 * 1024;

/** What an entry is. Only `file` entries carry data (and only they can be WebDataset members). */
export type TarEntryType = 'file' | 'directory' | 'link' | 'symlink' | 'device' | 'fifo' | 'other';

/** One entry of an archive, with its place in the archive. */
export interface TarEntry {
  /** Full name (after pax or GNU long-name headers), checked to be safe. */
  readonly name: string;
  readonly type: TarEntryType;
  /** Offset of the entry's first header block: its first extension header when it has one. */
  readonly header: number;
  /** Offset of the entry's data; always `header + 512·k` for k ≥ 1. */
  readonly offset: number;
  /** Bytes of data (0 for entries other than files and `other`). */
  readonly size: number;
}

export interface TarReaderOptions {
  /** Name of the shard in error messages. */
  readonly shard: string;
  /** Offset in the archive of the first byte of the source (a fragment read at an offset). Default 0. */
  readonly start?: number;
  /** Size of the whole archive when known: sizes running past it are refused before any read. */
  readonly totalBytes?: number;
  /**
   * Require the end-of-archive block (default true). Off for fragments, which end with the data
   * of their last entry.
   */
  readonly requireEnd?: boolean;
  /** Refuse reading an entry's data larger than this (default {@link DEFAULT_MAX_MEMBER_BYTES}). */
  readonly maxMemberBytes?: number;
  readonly signal?: AbortSignal;
}

/** Default largest member whose data is read into memory: 2 GiB. */
export const DEFAULT_MAX_MEMBER_BYTES = 2 * 1024 * 1024 * 1024;

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

// Type flags (byte 156 of a header).
const FLAG = {
  regular: 0x30, // '0'
  oldRegular: 0x00, // NUL (v7)
  hardLink: 0x31,
  symlink: 0x32,
  charDevice: 0x33,
  blockDevice: 0x34,
  directory: 0x35,
  fifo: 0x36,
  contiguous: 0x37,
  paxLocal: 0x78, // 'x'
  paxGlobal: 0x67, // 'g'
  gnuLongName: 0x4c, // 'L'
  gnuLongLink: 0x4b, // 'K'
  gnuSparse: 0x53, // 'S'
  gnuMultiVolume: 0x4d, // 'M'
} as const;

const NO_DATA_TYPES: ReadonlyMap<number, TarEntryType> = new Map([
  [FLAG.hardLink, 'link'],
  [FLAG.symlink, 'symlink'],
  [FLAG.charDevice, 'device'],
  [FLAG.blockDevice, 'device'],
  [FLAG.directory, 'directory'],
  [FLAG.fifo, 'fifo'],
]);

function flagName(flag: number): string {
  return flag >= 0x20 && flag < 0x7f ? `'${String.fromCharCode(flag)}'` : `0x${flag.toString(16).padStart(2, '0')}`;
}

/** Bytes of padding after `size` bytes of data. */
export function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

/** A header block as decoded, before extension headers are applied. */
export interface HeaderBlock {
  readonly name: string;
  readonly flag: number;
  readonly size: number;
}

function fail(shard: string, message: string, cause?: unknown): never {
  throw new FormatError(`${shard}: ${message}`, cause === undefined ? undefined : { cause });
}

function showBytes(bytes: Uint8Array): string {
  return JSON.stringify(Buffer.from(bytes).toString('latin1'));
}

/**
 * A numeric header field: octal digits (leading spaces allowed, then only NUL or space), or
 * GNU base-256 (first byte 0x80; 0xFF, a negative number, is refused).
 */
function numericField(shard: string, block: Uint8Array, start: number, length: number, field: string, at: number): number {
  const end = start + length;
  const first = block[start]!;
  if (first & 0x80) {
    if (first === 0xff) fail(shard, `header at offset ${at}: ${field} is negative (base-256)`);
    if (first !== 0x80) fail(shard, `header at offset ${at}: ${field} has an invalid base-256 marker 0x${first.toString(16)}`);
    let value = 0n;
    for (let i = start + 1; i < end; i++) value = value * 256n + BigInt(block[i]!);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) fail(shard, `header at offset ${at}: ${field} ${value} is too large`);
    return Number(value);
  }
  let i = start;
  while (i < end && block[i] === 0x20) i++;
  let value = 0;
  while (i < end && block[i]! >= 0x30 && block[i]! <= 0x37) value = value * 8 + (block[i++]! - 0x30);
  for (; i < end; i++) {
    if (block[i] !== 0 && block[i] !== 0x20) {
      fail(shard, `header at offset ${at}: ${field} is not an octal number: ${showBytes(block.subarray(start, end))}`);
    }
  }
  return value;
}

function text(shard: string, bytes: Uint8Array, what: string, at: number): string {
  try {
    return strictUtf8.decode(bytes);
  } catch (e) {
    fail(shard, `header at offset ${at}: ${what} is not valid UTF-8: ${showBytes(bytes)}`, e);
  }
}

function cString(bytes: Uint8Array): Uint8Array {
  const nul = bytes.indexOf(0);
  return nul < 0 ? bytes : bytes.subarray(0, nul);
}

function isZeroBlock(block: Uint8Array): boolean {
  for (let i = 0; i < block.length; i++) if (block[i] !== 0) return false;
  return true;
}

const USTAR_MAGIC = Buffer.from('ustar\0', 'latin1');
const GNU_MAGIC = Buffer.from('ustar  \0', 'latin1');

/**
 * Decodes one non-zero header block at offset `at`: checksum (the unsigned sum, or the signed
 * one some old writers used), name (with the ustar prefix), type flag and size.
 * @throws FormatError naming the shard, offset and field.
 */
export function decodeHeaderBlock(shard: string, block: Uint8Array, at: number): HeaderBlock {
  if (block.length !== BLOCK) fail(shard, `header at offset ${at} has ${block.length} bytes, not ${BLOCK}`);
  const notTar = 'the file is corrupt, compressed, or not a tar archive';
  let stored: number;
  try {
    stored = numericField(shard, block, 148, 8, 'the checksum', at);
  } catch (e) {
    fail(shard, `${(e as Error).message.slice(shard.length + 2)}; ${notTar}`, e);
  }
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : block[i]!;
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  if (stored !== unsigned && stored !== signed) {
    fail(
      shard,
      `header at offset ${at}: checksum ${stored} does not match the header's ${unsigned}; ${notTar}`,
    );
  }
  const gnu = Buffer.from(block.buffer, block.byteOffset + 257, 8).equals(GNU_MAGIC);
  const ustar = Buffer.from(block.buffer, block.byteOffset + 257, 6).equals(USTAR_MAGIC);
  let name = text(shard, cString(block.subarray(0, 100)), 'the name', at);
  if (ustar && !gnu) {
    const prefix = cString(block.subarray(345, 500));
    if (prefix.length > 0) name = `${text(shard, prefix, 'the name prefix', at)}/${name}`;
  }
  const size = numericField(shard, block, 124, 12, 'the size', at);
  return { name, flag: block[156]!, size };
}

interface PaxRecords {
  path?: string;
  size?: number;
  sparse: boolean;
}

/** Parses pax extended header records (`"<len> <key>=<value>\n"`), strictly. */
function parsePax(shard: string, data: Uint8Array, at: number): PaxRecords {
  const out: PaxRecords = { sparse: false };
  let pos = 0;
  const where = `pax header at offset ${at}`;
  while (pos < data.length) {
    // Some writers pad the records with NULs; nothing else may follow them.
    if (data[pos] === 0) {
      if (!isZeroBlock(data.subarray(pos))) fail(shard, `${where}: bytes after NUL padding at record offset ${pos}`);
      break;
    }
    let i = pos;
    let length = 0;
    while (i < data.length && data[i]! >= 0x30 && data[i]! <= 0x39 && i - pos < 10) length = length * 10 + (data[i++]! - 0x30);
    if (i === pos || data[i] !== 0x20) fail(shard, `${where}: record at offset ${pos} does not start with "<length> "`);
    const end = pos + length;
    if (length <= i - pos + 1 || end > data.length || data[end - 1] !== 0x0a) {
      fail(shard, `${where}: record at offset ${pos} has a bad length ${length}`);
    }
    const record = data.subarray(i + 1, end - 1);
    const eq = record.indexOf(0x3d);
    if (eq <= 0) fail(shard, `${where}: record at offset ${pos} has no "key=value"`);
    const key = Buffer.from(record.subarray(0, eq)).toString('latin1');
    const value = record.subarray(eq + 1);
    if (key === 'path') {
      out.path = text(shard, value, 'the pax path', at);
    } else if (key === 'size') {
      const digits = Buffer.from(value).toString('latin1');
      if (!/^[0-9]{1,16}$/.test(digits) || !Number.isSafeInteger(Number(digits))) {
        fail(shard, `${where}: size ${JSON.stringify(digits)} is not a non-negative integer`);
      }
      out.size = Number(digits);
    } else if (key.startsWith('GNU.sparse.')) {
      out.sparse = true;
    }
    pos = end;
  }
  return out;
}

/** Pulls bytes from an async source, counting the absolute position. */
class ByteCursor {
  readonly #source: AsyncIterator<Uint8Array>;
  readonly #chunks: Uint8Array[] = [];
  #head = 0;
  #buffered = 0;
  #done = false;
  position: number;

  constructor(source: AsyncIterable<Uint8Array> | Uint8Array, start: number) {
    if (source instanceof Uint8Array) {
      this.#chunks.push(source);
      this.#buffered = source.length;
      this.#done = true;
      this.#source = { next: async () => ({ done: true, value: undefined }) };
    } else if (source !== null && typeof source === 'object' && Symbol.asyncIterator in source) {
      this.#source = source[Symbol.asyncIterator]();
    } else {
      throw new ArgumentError('source', 'must be a Uint8Array or an AsyncIterable of Uint8Array chunks');
    }
    this.position = start;
  }

  async #pull(): Promise<boolean> {
    if (this.#done) return false;
    const { done, value } = await this.#source.next();
    if (done === true) {
      this.#done = true;
      return false;
    }
    if (!(value instanceof Uint8Array)) {
      throw new ArgumentError('source', `must yield Uint8Array chunks, got ${typeof value} (a stream with an encoding set?)`);
    }
    if (value.length > 0) {
      this.#chunks.push(value);
      this.#buffered += value.length;
    }
    return true;
  }

  #advance(n: number): void {
    this.#head += n;
    this.#buffered -= n;
    this.position += n;
    if (this.#head === this.#chunks[0]!.length) {
      this.#chunks.shift();
      this.#head = 0;
    }
  }

  /** The next `n` bytes as a fresh buffer; fewer only when the source ends first. */
  async read(n: number): Promise<Buffer> {
    while (this.#buffered < n && (await this.#pull()));
    const out = Buffer.allocUnsafe(Math.min(n, this.#buffered));
    let filled = 0;
    while (filled < out.length) {
      const chunk = this.#chunks[0]!;
      const k = Math.min(chunk.length - this.#head, out.length - filled);
      out.set(chunk.subarray(this.#head, this.#head + k), filled);
      filled += k;
      this.#advance(k);
    }
    return out;
  }

  /** Skips up to `n` bytes and returns how many were skipped (fewer only at the end). */
  async skip(n: number): Promise<number> {
    let left = n;
    while (left > 0) {
      if (this.#buffered === 0 && !(await this.#pull())) break;
      const k = Math.min(this.#chunks[0]!.length - this.#head, left);
      this.#advance(k);
      left -= k;
    }
    return n - left;
  }

  async close(): Promise<void> {
    this.#done = true;
    this.#chunks.length = 0;
    this.#buffered = 0;
    await this.#source.return?.();
  }

  /** Reads the source to its end and returns how many bytes that was. */
  async drain(): Promise<number> {
    let total = 0;
    for (;;) {
      const k = await this.skip(Number.MAX_SAFE_INTEGER - this.position);
      total += k;
      if (k === 0) return total;
    }
  }
}

/**
 * Reads the entries of a tar archive one at a time, from a buffer or a stream of chunks. Call
 * {@link next} for the next entry, then optionally {@link readData} for its bytes (skipped
 * otherwise).
 * @example
 * const tar = new TarReader(createReadStream('shard.tar'), { shard: 'shard.tar' });
 * for (let e = await tar.next(); e !== null; e = await tar.next()) console.log(e.name, e.offset, e.size);
 */
export class TarReader {
  readonly shard: string;
  readonly #cursor: ByteCursor;
  readonly #totalBytes: number | undefined;
  readonly #requireEnd: boolean;
  readonly #maxMemberBytes: number;
  readonly #signal: AbortSignal | undefined;
  /** The entry whose data comes next, until its data is read or skipped. */
  #current: TarEntry | undefined;
  /** Bytes (data and padding) to skip before the next header. */
  #pending = 0;
  #ended = false;

  constructor(source: AsyncIterable<Uint8Array> | Uint8Array, options: TarReaderOptions) {
    this.shard = options.shard;
    this.#cursor = new ByteCursor(source, options.start ?? 0);
    this.#totalBytes = options.totalBytes;
    this.#requireEnd = options.requireEnd ?? true;
    this.#maxMemberBytes = options.maxMemberBytes ?? DEFAULT_MAX_MEMBER_BYTES;
    this.#signal = options.signal;
  }

  /** Absolute offset of the next byte to be read. */
  get position(): number {
    return this.#cursor.position;
  }

  #fail(message: string): never {
    fail(this.shard, message);
  }

  #checkBounds(offset: number, size: number, what: string): void {
    if (this.#totalBytes !== undefined && offset + size > this.#totalBytes) {
      this.#fail(`${what} declares ${size} bytes at offset ${offset}, past the end of the ${this.#totalBytes}-byte shard`);
    }
  }

  async #skipPending(): Promise<void> {
    if (this.#pending === 0) return;
    const want = this.#pending;
    const from = this.#cursor.position;
    const skipped = await this.#cursor.skip(want);
    this.#pending = 0;
    if (skipped < want) {
      const e = this.#current;
      const what = e === undefined ? 'an extension header' : `member ${JSON.stringify(e.name)}`;
      this.#fail(`truncated: ${what} needs ${want} more bytes from offset ${from} but the shard ends at ${from + skipped}`);
    }
  }

  async #readExtension(header: HeaderBlock, at: number): Promise<Buffer> {
    if (header.size > MAX_EXTENSION_BYTES) {
      this.#fail(`extension header ${flagName(header.flag)} at offset ${at} is ${header.size} bytes, over the limit of ${MAX_EXTENSION_BYTES}`);
    }
    this.#checkBounds(at + BLOCK, header.size, `extension header at offset ${at}`);
    const data = await this.#cursor.read(header.size);
    if (data.length < header.size) {
      this.#fail(`truncated: extension header at offset ${at} needs ${header.size} bytes but the shard ends at ${this.#cursor.position}`);
    }
    this.#pending = padding(header.size);
    await this.#skipPending();
    return data;
  }

  /** The next entry, or null at the end of the archive. Unread data of the previous entry is skipped. */
  async next(): Promise<TarEntry | null> {
    if (this.#ended) return null;
    await this.#skipPending();
    this.#current = undefined;
    let chainStart = -1;
    let longName: string | undefined;
    let pax: PaxRecords | undefined;
    for (;;) {
      if (this.#signal?.aborted) throw new AbortError(`${this.shard}: reading was aborted`, { cause: this.#signal.reason });
      const at = this.#cursor.position;
      const block = await this.#cursor.read(BLOCK);
      const inChain = chainStart >= 0;
      if (block.length === 0 || (block.length === BLOCK && isZeroBlock(block))) {
        if (inChain) this.#fail(`the extension header at offset ${chainStart} is followed by no entry`);
        if (block.length === 0 && this.#requireEnd) {
          this.#fail(`truncated: the shard ends at offset ${at} without an end-of-archive block`);
        }
        this.#ended = true;
        return null;
      }
      if (block.length < BLOCK) this.#fail(`truncated: the header at offset ${at} has ${block.length} of ${BLOCK} bytes`);
      const header = decodeHeaderBlock(this.shard, block, at);
      const { flag } = header;
      if (flag === FLAG.paxGlobal) {
        if (inChain) this.#fail(`pax global header at offset ${at} sits between an extension header and its entry`);
        const global = parsePax(this.shard, await this.#readExtension(header, at), at);
        // A global path or size would rename or resize every later entry; no shard writer does it.
        if (global.path !== undefined || global.size !== undefined || global.sparse) {
          this.#fail(`pax global header at offset ${at} sets path, size or sparse records for all entries; refused`);
        }
        continue;
      }
      if (!inChain) chainStart = at;
      if (flag === FLAG.paxLocal) {
        const records = parsePax(this.shard, await this.#readExtension(header, at), at);
        pax = { ...pax, ...records, sparse: (pax?.sparse ?? false) || records.sparse };
        continue;
      }
      if (flag === FLAG.gnuLongName || flag === FLAG.gnuLongLink) {
        const data = await this.#readExtension(header, at);
        if (flag === FLAG.gnuLongName) {
          const bytes = cString(data);
          if (bytes.length > MAX_NAME_BYTES) {
            this.#fail(`GNU long name at offset ${at} is ${bytes.length} bytes, over the limit of ${MAX_NAME_BYTES}`);
          }
          longName = text(this.shard, bytes, 'the GNU long name', at);
        }
        continue;
      }

      const name = checkMemberName(this.shard, pax?.path ?? longName ?? header.name, chainStart);
      const size = pax?.size ?? header.size;
      const what = `member ${JSON.stringify(name)} (header at offset ${chainStart})`;
      if (flag === FLAG.gnuSparse || pax?.sparse === true) this.#fail(`${what} is a sparse file, which is not supported`);
      if (flag === FLAG.gnuMultiVolume) this.#fail(`${what} continues a multi-volume archive, which is not supported`);
      let type: TarEntryType;
      if (flag === FLAG.regular || flag === FLAG.oldRegular || flag === FLAG.contiguous) {
        type = flag === FLAG.oldRegular && name.endsWith('/') ? 'directory' : 'file';
      } else {
        type = NO_DATA_TYPES.get(flag) ?? 'other';
      }
      const hasData = type === 'file' || type === 'other';
      if (!hasData && size > 0) {
        // Python's tarfile reads no data after such an entry, GNU tar and tar-stream do for some
        // types: the archive means different things to different readers.
        this.#fail(`${what} is a ${type} (type ${flagName(flag)}) but declares ${size} bytes of data`);
      }
      const offset = at + BLOCK;
      this.#checkBounds(offset, size, what);
      const entry: TarEntry = { name, type, header: chainStart, offset, size: hasData ? size : 0 };
      this.#current = entry;
      this.#pending = entry.size + padding(entry.size);
      return entry;
    }
  }

  /**
   * The data of the entry {@link next} just returned. Call it at most once per entry.
   * @throws FormatError when the data is truncated or over `maxMemberBytes`.
   */
  async readData(): Promise<Buffer> {
    const e = this.#current;
    if (e === undefined || this.#cursor.position !== e.offset) {
      throw new ArgumentError('readData', 'must be called once, right after next() returned an entry');
    }
    if (e.size > this.#maxMemberBytes) {
      this.#fail(`member ${JSON.stringify(e.name)} is ${e.size} bytes, over the limit of ${this.#maxMemberBytes} (maxMemberBytes)`);
    }
    const data = await this.#cursor.read(e.size);
    if (data.length < e.size) {
      this.#fail(`truncated: member ${JSON.stringify(e.name)} declares ${e.size} bytes at offset ${e.offset} but the shard ends at ${e.offset + data.length}`);
    }
    this.#pending = padding(e.size);
    return data;
  }

  /**
   * Reads the source to its end once {@link next} has returned null (bytes after the
   * end-of-archive block belong to the file, and to its hash, too) and returns how many bytes that was.
   */
  async drain(): Promise<number> {
    if (!this.#ended) throw new ArgumentError('drain', 'must be called after next() returned null');
    return this.#cursor.drain();
  }

  /** Stops reading: a stream source is told to stop (its iterator's `return`). */
  async close(): Promise<void> {
    this.#ended = true;
    await this.#cursor.close();
  }
}
