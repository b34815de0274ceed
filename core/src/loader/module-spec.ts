/**
 * Module specs: how a worker thread gets a dataset, a collate function or an init hook. Objects
 * and functions cannot cross a thread boundary, so the DataLoader sends `{ module, export, args }`
 * and each worker imports the module itself and calls the exported factory with `args`.
 */
import { isAbsolute } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ArgumentError } from '../errors.ts';
import type { Dataset, IterableDataset } from '../dataset/dataset.ts';
import { isDataset, isIterableDataset } from '../dataset/dataset.ts';
import type { CollateFn } from '../collate/default-collate.ts';

/**
 * A module and one of its exports. `module` is a URL (`new URL('./data.ts', import.meta.url)`),
 * an absolute path, or a bare package specifier; relative paths are refused because a worker
 * would resolve them against a different file than the caller means. `export` defaults to
 * `default`; `args` must survive structuredClone (it is copied to every worker).
 */
export interface ModuleSpec {
  module: string | URL;
  export?: string;
  args?: unknown;
}

/**
 * A dataset as a module spec. The export is a factory
 * `(args, context: WorkerContext | null) => Dataset | IterableDataset | Promise<…>`, called once
 * per worker (context describes the worker) or once in-process with `numWorkers: 0` (context null).
 * `length`, when given, lets the loader know its batch count before any worker has started.
 *
 * @example
 * new DataLoader({ module: new URL('./images.ts', import.meta.url), export: 'openImages',
 *   args: { root: '/data' } }, { numWorkers: 2, batchSize: 32 })
 */
export interface DatasetSpec extends ModuleSpec {
  length?: number;
}

/** What a dataset or collate factory learns about the worker it runs in. */
export interface WorkerContext {
  readonly id: number;
  readonly numWorkers: number;
  readonly seed: number;
  readonly epoch: number;
}

/** A validated spec: the module as a string a worker can `import()`, the export name resolved. */
export interface ResolvedSpec {
  module: string;
  export: string;
  args: unknown;
}

export function isModuleSpec(value: unknown): value is ModuleSpec {
  if (typeof value !== 'object' || value === null) return false;
  const m = (value as ModuleSpec).module;
  return typeof m === 'string' || m instanceof URL;
}

/** Validates a spec given as argument `name` (`dataset`, `collate`, `workerInit`). */
export function resolveSpec(name: string, spec: ModuleSpec): ResolvedSpec {
  if (!isModuleSpec(spec)) {
    throw new ArgumentError(name, 'must be a module spec { module: string | URL, export?, args? }');
  }
  let module: string;
  if (spec.module instanceof URL) {
    module = spec.module.href;
  } else if (spec.module === '') {
    throw new ArgumentError(`${name}.module`, 'must not be empty');
  } else if (isAbsolute(spec.module)) {
    module = pathToFileURL(spec.module).href;
  } else if (spec.module.startsWith('./') || spec.module.startsWith('../') || spec.module === '.' || spec.module === '..') {
    throw new ArgumentError(
      `${name}.module`,
      `relative specifier ${JSON.stringify(spec.module)} is ambiguous in a worker: give new URL(${JSON.stringify(spec.module)}, import.meta.url) or an absolute path`,
    );
  } else {
    module = spec.module;
  }
  const exportName = spec.export ?? 'default';
  if (typeof exportName !== 'string' || exportName === '') {
    throw new ArgumentError(`${name}.export`, `must be a non-empty string, got ${String(exportName)}`);
  }
  try {
    structuredClone(spec.args);
  } catch (e) {
    throw new ArgumentError(`${name}.args`, `must survive structuredClone to reach a worker: ${(e as Error).message}`, { cause: e });
  }
  return { module, export: exportName, args: spec.args };
}

/** Imports the module of a spec and returns its export, which must be a function. */
export async function loadExport(name: string, spec: ResolvedSpec): Promise<(...args: unknown[]) => unknown> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(spec.module)) as Record<string, unknown>;
  } catch (e) {
    const reason = e instanceof Error ? e.message : String(e);
    throw new ArgumentError(`${name}.module`, `${JSON.stringify(spec.module)} failed to load: ${reason}`, { cause: e });
  }
  const value = mod[spec.export];
  if (value === undefined) {
    const names = Object.keys(mod).sort();
    throw new ArgumentError(
      `${name}.export`,
      `module ${JSON.stringify(spec.module)} has no export ${JSON.stringify(spec.export)} (it exports: ${names.join(', ') || 'nothing'})`,
    );
  }
  if (typeof value !== 'function') {
    throw new ArgumentError(`${name}.export`, `${JSON.stringify(spec.export)} of ${JSON.stringify(spec.module)} is a ${typeof value}, expected a function`);
  }
  return value as (...args: unknown[]) => unknown;
}

/** Builds a dataset from its spec: import, call the factory, check what it returned. */
export async function loadDataset(
  spec: ResolvedSpec,
  context: WorkerContext | null,
): Promise<Dataset<unknown> | IterableDataset<unknown>> {
  const factory = await loadExport('dataset', spec);
  const dataset = await factory(spec.args, context);
  if (!isDataset(dataset) && !isIterableDataset(dataset)) {
    throw new ArgumentError(
      'dataset.export',
      `factory ${JSON.stringify(spec.export)} of ${JSON.stringify(spec.module)} returned ${describe(dataset)}, not a Dataset or IterableDataset`,
    );
  }
  return dataset;
}

/** Builds a collate function from its spec: the export is a factory `(args, context) => CollateFn`. */
export async function loadCollate(spec: ResolvedSpec, context: WorkerContext | null): Promise<CollateFn> {
  const factory = await loadExport('collate', spec);
  const collate = await factory(spec.args, context);
  if (typeof collate !== 'function') {
    throw new ArgumentError(
      'collate.export',
      `factory ${JSON.stringify(spec.export)} of ${JSON.stringify(spec.module)} returned ${describe(collate)}, not a collate function (the export is a factory: (args) => (samples) => batch)`,
    );
  }
  return collate as CollateFn;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'object') return `an object with keys [${Object.keys(value).join(', ')}]`;
  return `a ${typeof value}`;
}
