/** The shared-memory transport: the loader's ring of segment files and the trainer's reader. */
export { ShmRing, reclaimSegments, shmRingDefaults } from './shm-ring.ts';
export type { ShmRingOptions, ResolvedShmRingOptions, ReclaimReport } from './shm-ring.ts';
export { ShmReader, StaleDescriptorError } from './shm-reader.ts';
export type { ShmReaderOptions } from './shm-reader.ts';
export { parseSegmentDescriptor } from './descriptor.ts';
export type { SegmentDescriptor } from './descriptor.ts';
export { HEADER_BYTES as SEGMENT_HEADER_BYTES, MAX_SLOTS as SHM_MAX_SLOTS } from './segment-file.ts';
