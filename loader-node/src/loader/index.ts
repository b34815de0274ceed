/** The loader process (standalone mode): the per-rank pipeline from the dataset to the trainer. */
export { runLoader, loaderDefaults } from './run-loader.ts';
export type { LoaderDeps, LoaderEvent, LoaderOptions, LoaderSummary } from './run-loader.ts';
export { batchTensors } from './batch-tensors.ts';
export type { BatchTensors } from './batch-tensors.ts';
export { liveBatchWorkers } from './batch-worker-pool.ts';
export type { SampleContext, SampleTransform } from './module-spec.ts';
