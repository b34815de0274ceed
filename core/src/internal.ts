/**
 * What sibling packages of the monorepo may use beyond the public API: argument checks, so every
 * component validates its boundaries with the same messages.
 */
export * from './validate.ts';
