/** The samplers: which dataset indices a pass visits, in which order, and how they are batched. */
// sampler.ts's BatchSampler interface shares its name with the class of batch.ts: the class
// keeps the name, the interface (what a DataLoader accepts) is exported as BatchSamplerLike.
export type { Sampler, BatchSampler as BatchSamplerLike } from './sampler.ts';
export { isSampler } from './sampler.ts';
export * from './sequential.ts';
export * from './random.ts';
export * from './subset-random.ts';
export * from './weighted-random.ts';
export * from './stratified.ts';
export * from './batch.ts';
export * from './balanced-batch.ts';
export * from './priority.ts';
export * from './sum-tree.ts';
export * from './distributed.ts';
export * from './load-balanced-distributed.ts';
