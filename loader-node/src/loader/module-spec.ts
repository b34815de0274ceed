/**
 * The loader's pluggable steps (a per-sample transform, the collate) as module specs: a function
 * cannot cross into a worker thread, so the loader sends `{ module, export, args }` and every
 * thread imports the module itself and calls the exported factory with `args` — core's
 * DataLoader convention (core's `ModuleSpec`, checked and imported by core's own functions).
 */
import { ArgumentError, type CollateFn, type MDSSample, type ModuleSpec } from '@shardline/core';
import { loadExport, resolveSpec, type ResolvedSpec } from '@shardline/core/internal';

/** Where a sample being transformed sits in the stream; the same whichever thread runs it. */
export interface SampleContext {
  /** The global sample id (a position in the dataset). */
  readonly sampleId: number;
  readonly epoch: number;
  /** The step of the batch the sample belongs to, and its position in that batch. */
  readonly step: number;
  readonly position: number;
  readonly rank: number;
  /** The loader's seed: derive per-sample randomness from (seed, epoch, sampleId), never from the thread. */
  readonly seed: number;
}

/**
 * A per-sample transform (augmentation, image decode…), run on a decoded MDS sample before
 * collate. Its result is what collate sees. It must depend only on its arguments, so a batch is
 * the same bytes whichever worker builds it.
 */
export type SampleTransform = (sample: MDSSample, context: SampleContext) => unknown;

/** A validated spec: a module a worker can `import()`, the export resolved, args cloneable. */
/** A checked spec: the module as a string a worker can `import()`, the export name resolved. */
export type ResolvedModuleSpec = ResolvedSpec;

/**
 * Checks spec `name` (`collate`, `transform`) where the caller gives it, so a bad one is refused
 * before any thread starts (core's check, shared with the DataLoader's workers).
 * @throws ArgumentError naming `name` or one of its fields: not a spec, an empty or relative
 *   module (a worker would resolve it against another file), an empty export, args that do not
 *   survive structuredClone.
 */
export function resolveModuleSpec(name: string, spec: ModuleSpec): ResolvedModuleSpec {
  return resolveSpec(name, spec);
}

/**
 * Imports the spec's module and calls its export, a factory `(args) => fn`, checking that a
 * function comes back.
 * @throws ArgumentError naming `name.module` (it does not load), `name.export` (missing, not a
 *   function, or its factory returned no function).
 */
export async function loadFactory(name: string, spec: ResolvedModuleSpec): Promise<(...args: never[]) => unknown> {
  const factory = await loadExport(name, spec);
  const made: unknown = await factory(spec.args);
  if (typeof made !== 'function') {
    throw new ArgumentError(
      `${name}.export`,
      `factory ${JSON.stringify(spec.export)} of ${JSON.stringify(spec.module)} returned ${made === null ? 'null' : typeof made}, not a function (the export is a factory: (args) => fn)`,
    );
  }
  return made as (...args: never[]) => unknown;
}

/** The collate and transform of one thread, loaded from their specs (defaults where none). */
export async function loadSteps(specs: { collate: ResolvedModuleSpec | null; transform: ResolvedModuleSpec | null }): Promise<{ collate: CollateFn | undefined; transform: SampleTransform | undefined }> {
  return {
    collate: specs.collate === null ? undefined : ((await loadFactory('collate', specs.collate)) as CollateFn),
    transform: specs.transform === null ? undefined : ((await loadFactory('transform', specs.transform)) as SampleTransform),
  };
}
