/**
 * The descriptor of a batch in shared memory: what travels on NATS instead of the batch's bytes
 * when loader and trainer share a node. It is small (well under 200 bytes of JSON) and names the
 * segment file by ring and slot, never by path, so a descriptor cannot point a reader outside
 * its job's segments. A received descriptor is hostile until {@link parseSegmentDescriptor} said
 * otherwise.
 */
import { FormatError } from '../../errors.ts';
import { describeValue } from '../messages.ts';
import { MAX_U32 } from '../position.ts';
import { HEADER_BYTES, MAX_SLOT_CAPACITY, MAX_SLOTS, parseSegmentFileName, segmentFileName } from './segment-file.ts';

/**
 * Where one batch lies in a ring: the file `<ring>-<slot>`, bytes `[offset, offset + length)`,
 * written as the slot's `generation`-th batch.
 */
export interface SegmentDescriptor {
  /** The ring's name, `shardline-<job>-<rank>-<ringId>`. */
  readonly ring: string;
  /** The slot (segment file) of the ring, in [0, slots). */
  readonly slot: number;
  /** How many batches the slot had held, this one included (≥ 1); a reader checks it against the slot's header. */
  readonly generation: number;
  /** Byte offset of the batch in the segment file. */
  readonly offset: number;
  /** Byte length of the batch. */
  readonly length: number;
  /** CRC-32 of the batch bytes, when the ring computes one. */
  readonly checksum?: number;
}

const FIELDS = new Set(['ring', 'slot', 'generation', 'offset', 'length', 'checksum']);

function intField(value: Record<string, unknown>, field: string, min: number, max: number): number {
  const v = value[field];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new FormatError(`segment descriptor: ${field} must be an integer in [${min}, ${max}], got ${describeValue(v)}`);
  }
  return v;
}

/**
 * Checks a descriptor received from elsewhere (e.g. parsed from a NATS message): an object with
 * exactly the fields of {@link SegmentDescriptor}, a ring name of the right shape, and numbers in
 * range. Whether the slot holds that generation is for the reader to check against the file.
 * @throws FormatError naming the field that is wrong.
 */
export function parseSegmentDescriptor(value: unknown): SegmentDescriptor {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new FormatError(`segment descriptor: must be an object, got ${describeValue(value)}`);
  }
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!FIELDS.has(key)) throw new FormatError(`segment descriptor: unknown field ${describeValue(key)}`);
  }
  const ring = record.ring;
  const slot = intField(record, 'slot', 0, MAX_SLOTS - 1);
  if (typeof ring !== 'string' || ring.length > 200 || parseSegmentFileName(segmentFileName(ring, slot)) === undefined) {
    throw new FormatError(`segment descriptor: ring must be a name shardline-<job>-<rank>-<ringId>, got ${describeValue(ring)}`);
  }
  const generation = intField(record, 'generation', 1, Number.MAX_SAFE_INTEGER);
  const offset = intField(record, 'offset', HEADER_BYTES, HEADER_BYTES + MAX_SLOT_CAPACITY);
  const length = intField(record, 'length', 0, MAX_SLOT_CAPACITY);
  const descriptor: SegmentDescriptor = { ring, slot, generation, offset, length };
  if (record.checksum === undefined) return descriptor;
  return { ...descriptor, checksum: intField(record, 'checksum', 0, MAX_U32) };
}
