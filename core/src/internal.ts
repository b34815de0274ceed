/**
 * What sibling packages of the monorepo may use beyond the public API: argument checks, so every
 * component validates its boundaries with the same messages.
 */
export * from './validate.ts';
// Module specs and errors that cross a worker boundary, for other worker pools (the loader's).
export { resolveSpec, loadExport } from './loader/module-spec.ts';
export type { ResolvedSpec } from './loader/module-spec.ts';
export { serializeError, deserializeError } from './loader/worker-error.ts';
export type { SerializedError } from './loader/worker-error.ts';
