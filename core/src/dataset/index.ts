/** Datasets: map-style and iterable datasets, their wrappers, transforms, robustness and validation. */
export * from './dataset.ts';
export * from './list.ts';
export * from './tensor-dataset.ts';
export * from './concat.ts';
export * from './subset.ts';
export * from './fixed-record-file.ts';
export * from './sqlite.ts';
export * from './streaming.ts';
export * from './image-folder.ts';
export * from './transforms.ts';
export * from './robust.ts';
export * from './validator.ts';
export { decodeImage } from './image-decode.ts';
