/**
 * @shardline/core — the library every other component stands on: datasets, samplers, collate,
 * the DataLoader with worker threads, the epoch planner and the batch wire format. Pure: no
 * network, no Kubernetes.
 */
export * from './errors.ts';
export * from './random.ts';
export * from './tensor.ts';
export * from './dataset/index.ts';
export * from './sampler/index.ts';
export * from './collate/index.ts';
export * from './loader/index.ts';
export * from './plan/index.ts';
export * from './wire/index.ts';
export * from './format/index.ts';
