/**
 * Argument checks and label grouping shared by the samplers of this folder. Internal: the
 * folder's index does not export it.
 */
import { ArgumentError } from '../errors.ts';
import { requireInt } from '../validate.ts';

/** A class label: a number or a string. `1` and `'1'` are different classes. */
export type Label = number | string;

function show(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

/** The options object of a constructor: undefined becomes `{}`, anything but an object is refused. */
export function readOptions<T extends object>(value: T | undefined, name = 'options'): Partial<T> {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ArgumentError(name, `must be an options object, got ${show(value)}`);
  }
  return value;
}

/** A boolean option, or its default when undefined. */
export function requireBoolean(name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new ArgumentError(name, `must be a boolean, got ${show(value)}`);
  return value;
}

/** The number of samples of a sampler's source: a count, or anything with a `length`. */
export function sourceLength(source: number | { readonly length: number }): number {
  if (typeof source === 'number') return requireInt('source', source);
  if (typeof source !== 'object' || source === null) {
    throw new ArgumentError('source', `must be a sample count or a dataset with a length, got ${show(source)}`);
  }
  return requireInt('source.length', source.length);
}

/** An array-like argument (array or typed array); returns its length. */
export function requireArrayLike(name: string, value: unknown): number {
  if (
    typeof value !== 'object' ||
    value === null ||
    typeof (value as ArrayLike<unknown>).length !== 'number' ||
    !Number.isInteger((value as ArrayLike<unknown>).length)
  ) {
    throw new ArgumentError(name, `must be an array or a typed array, got ${show(value)}`);
  }
  return (value as ArrayLike<unknown>).length;
}

/** Dataset indices grouped by class, classes in order of first appearance. */
export interface LabelGroups {
  readonly classes: readonly Label[];
  /** `members[c]`: the indices labelled `classes[c]`, ascending. */
  readonly members: readonly Uint32Array[];
}

/** Groups `labels` by value. Each label must be a string or a finite number. */
export function groupByLabel(name: string, labels: ArrayLike<Label>): LabelGroups {
  const n = requireArrayLike(name, labels);
  const byLabel = new Map<Label, number>();
  const classes: Label[] = [];
  const classOf = new Uint32Array(n);
  const counts: number[] = [];
  for (let i = 0; i < n; i++) {
    const label = labels[i];
    if (typeof label !== 'string' && (typeof label !== 'number' || !Number.isFinite(label))) {
      throw new ArgumentError(`${name}[${i}]`, `must be a string or a finite number, got ${show(label)}`);
    }
    // -0 and 0 must be one class (Map keys already agree, this keeps the reported label tidy).
    const key = label === 0 ? 0 : label;
    let c = byLabel.get(key);
    if (c === undefined) {
      c = classes.length;
      byLabel.set(key, c);
      classes.push(key);
      counts.push(0);
    }
    classOf[i] = c;
    counts[c]! += 1;
  }
  const members = counts.map((count) => new Uint32Array(count));
  const filled = new Uint32Array(classes.length);
  for (let i = 0; i < n; i++) {
    const c = classOf[i]!;
    members[c]![filled[c]!++] = i;
  }
  return { classes, members };
}
