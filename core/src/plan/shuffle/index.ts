/** The shuffle registry: each mode name maps to a pure function of (seed, epoch, shards). */
import { globalShuffle } from './global.ts';
import { noShuffle } from './none.ts';
import { shardAwareShuffle } from './shard-aware.ts';
import type { Shuffle } from '../types.ts';

export const ShuffleMode = {
  None: 'none',
  Global: 'global',
  ShardAware: 'shard-aware',
} as const;
export type ShuffleMode = (typeof ShuffleMode)[keyof typeof ShuffleMode];

/** Shuffle families by name. */
export const shuffles: Readonly<Record<ShuffleMode, Shuffle>> = Object.freeze({
  none: noShuffle,
  global: globalShuffle,
  'shard-aware': shardAwareShuffle,
});

export { globalShuffle, noShuffle, shardAwareShuffle };
