/**
 * From tar entries to WebDataset samples: the one place that applies WebDataset's grouping
 * (`group_by_keys` of the reference reader), shared by the streaming reader and the index builder
 * so that an index always describes exactly the samples a sequential read yields.
 *
 * Rules: only regular files count (directories, links and other entries are skipped); metadata
 * members and names without a suffix are skipped (names.ts); consecutive members with the same key
 * form one sample, in tar order; a suffix repeated within one sample (after lowercasing) is a
 * FormatError naming the shard, key and both members; a key seen again after another key starts
 * a new sample with that key, as in the reference (the index keeps both, by position).
 */
import { FormatError } from '../../errors.ts';
import { RESERVED_SUFFIXES, isMetadataName, splitMemberName } from './names.ts';
import type { TarReader } from './tar.ts';

/** One member of a sample as found in the tar. */
export interface ScannedMember {
  readonly suffix: string;
  /** The member's full name in the tar (its suffix may be in another case). */
  readonly name: string;
  readonly header: number;
  readonly offset: number;
  readonly size: number;
  /** The member's bytes, when read. */
  readonly data?: Buffer;
}

/** One sample as found in the tar: its key and members in tar order. */
export interface ScannedSample {
  readonly key: string;
  readonly members: readonly ScannedMember[];
}

/**
 * Yields the samples of a tar in order, reading each member's data when `withData` is set (the
 * streaming reader) or skipping it (the index builder, which needs only offsets).
 */
export async function* scanSamples(tar: TarReader, withData: boolean): AsyncGenerator<ScannedSample> {
  let key: string | undefined;
  let members: ScannedMember[] = [];
  for (let entry = await tar.next(); entry !== null; entry = await tar.next()) {
    if (entry.type !== 'file' || isMetadataName(entry.name)) continue;
    const split = splitMemberName(entry.name);
    if (split === undefined) continue;
    if (split.key !== key) {
      if (key !== undefined) yield { key, members };
      key = split.key;
      members = [];
    }
    const { suffix } = split;
    const previous = members.find((m) => m.suffix === suffix);
    if (previous !== undefined || RESERVED_SUFFIXES.has(suffix)) {
      const clash = previous === undefined ? `the reserved field ${suffix}` : `member ${JSON.stringify(previous.name)}`;
      throw new FormatError(
        `${tar.shard}: sample ${JSON.stringify(key)}: member ${JSON.stringify(entry.name)} (offset ${entry.offset}) ` +
          `repeats the suffix ${JSON.stringify(suffix)} of ${clash}`,
      );
    }
    const data = withData ? await tar.readData() : undefined;
    members.push({ suffix, name: entry.name, header: entry.header, offset: entry.offset, size: entry.size, ...(data && { data }) });
  }
  if (key !== undefined) yield { key, members };
}
