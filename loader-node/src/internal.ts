/** What sibling packages of the monorepo may use from loader-node beyond its public entry. */
export * from './index.ts';
export { normalizePrefix, resolveLocalPath, resolveS3Key } from './store/key.ts';
export { writeAtomically } from './store/partial-file.ts';
export { classifyS3Error, backoffDelay } from './store/retry.ts';

