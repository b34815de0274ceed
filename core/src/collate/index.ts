/** Collate: turning the samples of a batch into one batch of tensors. */
export type { CollateFn, Collated } from './default-collate.ts';
export { defaultCollate } from './default-collate.ts';
export type { PadSequenceOptions, PaddedBatch, Sequence } from './pad-sequence.ts';
export { PaddingSide, padSequenceCollate } from './pad-sequence.ts';
export type { BatchWithMetadata, MetadataCollateOptions } from './metadata.ts';
export { collateWithMetadata } from './metadata.ts';
export { buffersOf, transferListOf } from './transfer.ts';
