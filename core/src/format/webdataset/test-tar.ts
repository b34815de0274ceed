/**
 * Hand-made tar archives for tests: headers with any field set to any bytes (bad checksums,
 * non-octal sizes, base-256 sizes, GNU and v7 magic), pax and GNU long-name headers, so the
 * reader can be fed exactly the hostile input a writer library would refuse to produce.
 */
import { BLOCK, padding } from './tar.ts';

export interface HeaderFields {
  readonly name?: string;
  /** Raw bytes of the name field (overrides `name`). */
  readonly nameBytes?: Uint8Array;
  /** A number (written in octal) or the raw 12 bytes of the size field. */
  readonly size?: number | Uint8Array;
  /** Type flag character ('0', '5', 'x', …) or byte. */
  readonly type?: string | number;
  readonly prefix?: string;
  readonly magic?: 'ustar' | 'gnu' | 'v7';
  /** A wrong checksum, or a signed one (as old writers computed it). */
  readonly checksum?: 'bad' | 'signed';
}

function octal(value: number, width: number): Buffer {
  return Buffer.from(`${value.toString(8).padStart(width - 1, '0')}\0`, 'latin1');
}

/** One 512-byte header block. */
export function header(fields: HeaderFields): Buffer {
  const b = Buffer.alloc(BLOCK);
  (fields.nameBytes !== undefined ? Buffer.from(fields.nameBytes) : Buffer.from(fields.name ?? 'file.txt', 'utf8')).copy(b, 0, 0, 100);
  octal(0o644, 8).copy(b, 100);
  octal(0, 8).copy(b, 108);
  octal(0, 8).copy(b, 116);
  const size = fields.size ?? 0;
  (typeof size === 'number' ? octal(size, 12) : Buffer.from(size)).copy(b, 124, 0, 12);
  octal(0, 12).copy(b, 136);
  const type = fields.type ?? '0';
  b[156] = typeof type === 'number' ? type : type.charCodeAt(0);
  const magic = fields.magic ?? 'ustar';
  if (magic === 'ustar') b.write('ustar\x0000', 257, 'latin1');
  if (magic === 'gnu') b.write('ustar  \0', 257, 'latin1');
  if (fields.prefix !== undefined) b.write(fields.prefix, 345, 'utf8');
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of b) sum += fields.checksum === 'signed' && byte > 127 ? byte - 256 : byte;
  if (fields.checksum === 'bad') sum += 1;
  Buffer.from(`${(sum >>> 0).toString(8).padStart(6, '0')}\0 `, 'latin1').copy(b, 148);
  return b;
}

/** A header, its data and the padding to a whole block. */
export function member(name: string, data: string | Uint8Array = '', fields: HeaderFields = {}): Buffer {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data);
  return Buffer.concat([header({ name, size: bytes.length, ...fields }), bytes, Buffer.alloc(padding(bytes.length))]);
}

/** A pax extended header ('x', or 'g' for global) with these records. */
export function pax(records: Record<string, string>, type: 'x' | 'g' = 'x'): Buffer {
  const body = Buffer.concat(
    Object.entries(records).map(([k, v]) => {
      const text = ` ${k}=${v}\n`;
      let length = Buffer.byteLength(text) + 1;
      while (String(length).length + Buffer.byteLength(text) !== length) length++;
      return Buffer.from(`${length}${text}`, 'utf8');
    }),
  );
  return member('PaxHeaders/x', body, { type });
}

/** A GNU long-name header ('L') for the next entry. */
export function longName(name: string): Buffer {
  return member('././@LongLink', Buffer.concat([Buffer.from(name, 'utf8'), Buffer.alloc(1)]), { type: 'L', magic: 'gnu' });
}

/** Blocks followed by the two zero blocks that end an archive. */
export function archive(...parts: Uint8Array[]): Buffer {
  return Buffer.concat([...parts, Buffer.alloc(2 * BLOCK)]);
}

/** Yields `bytes` in chunks of `size` bytes (a stream that splits headers anywhere). */
export async function* chunked(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}
