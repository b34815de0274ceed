/** The DataLoader family: batches from datasets, in process or on worker threads. */
export type { DataLoaderOptions, DataSource } from './dataloader.ts';
export { DataLoader } from './dataloader.ts';
export type { DatasetSpec, ModuleSpec, WorkerContext } from './module-spec.ts';
export type { WorkerInfo } from './worker-info.ts';
export { getWorkerInfo } from './worker-info.ts';
export type { WorkerErrorDetails } from './worker-error.ts';
export { WorkerError } from './worker-error.ts';
export { liveWorkerCount } from './worker-pool.ts';
export type {
  AdaptiveBatchDataLoaderOptions,
  BatchSizeControllerOptions,
  BatchSizeDecision,
  StepFeedback,
} from './adaptive-batch-dataloader.ts';
export { AdaptiveBatchDataLoader, AdaptiveBatchSampler, BatchSizeController } from './adaptive-batch-dataloader.ts';
export type { CurriculumOptions, Difficulty, PacingFn } from './curriculum-dataloader.ts';
export { CurriculumDataLoader, CurriculumSampler, Pacing, curriculumFraction } from './curriculum-dataloader.ts';
