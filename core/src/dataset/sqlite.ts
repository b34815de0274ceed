/**
 * SqliteDataset: the rows of one SQLite table as samples, through `node:sqlite`. Identifiers
 * (table, columns) are checked against a strict pattern and against the schema, then quoted;
 * values only ever travel as bound parameters. Rows keep rowid order, and `get(i)` is one
 * indexed lookup (`WHERE rowid = ?`), not an OFFSET scan.
 */
import { DatabaseSync } from 'node:sqlite';
import type { StatementSync } from 'node:sqlite';
import { ArgumentError, ClosedError, DatasetError } from '../errors.ts';
import { normalizeIndex } from '../validate.ts';
import type { Dataset } from './dataset.ts';

/** A value as SQLite returns it: BLOBs come back as Uint8Array. */
export type SqliteValue = null | number | bigint | string | Uint8Array;
/** One row: column name → value. */
export type SqliteRow = Record<string, SqliteValue>;

export interface SqliteDatasetOptions {
  /** The database file. */
  path: string;
  /** The table whose rows are the samples. */
  table: string;
  /** The columns to read, in this order (default: every column of the table). */
  columns?: readonly string[];
  /** Return INTEGER values as bigint (needed above 2^53; default false). */
  readBigInts?: boolean;
}

/** Identifiers we accept: plain SQL names, so quoting them can never change the statement. */
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
/** The aliases SQLite accepts for the rowid; a column of the same name hides one. */
const ROWID_ALIASES = ['rowid', '_rowid_', 'oid'] as const;

/**
 * A read-only, map-style dataset over a SQLite table. The rowids are loaded once (8 bytes per
 * row) so that sample `i` is the row with the i-th smallest rowid.
 *
 * @example
 * const ds = new SqliteDataset({ path: 'data.db', table: 'samples', columns: ['image', 'label'] });
 * const { image, label } = ds.get(0); // image: Uint8Array (a BLOB), label: number
 * ds.close();
 */
export class SqliteDataset implements Dataset<SqliteRow> {
  readonly path: string;
  readonly table: string;
  readonly columns: readonly string[];
  readonly length: number;
  #db: DatabaseSync;
  #rowids: BigInt64Array;
  #select: StatementSync;
  #closed = false;

  constructor(options: SqliteDatasetOptions) {
    if (typeof options !== 'object' || options === null) throw new ArgumentError('options', 'must be an object');
    if (typeof options.path !== 'string' || options.path.length === 0) {
      throw new ArgumentError('path', `must be a non-empty file path, got ${JSON.stringify(options.path) ?? String(options.path)}`);
    }
    const table = requireIdentifier('table', options.table);
    const wanted = options.columns === undefined ? undefined : requireColumns(options.columns);

    let db: DatabaseSync;
    try {
      db = new DatabaseSync(options.path, { readOnly: true });
    } catch (error) {
      throw new ArgumentError('path', `cannot open SQLite database ${options.path}: ${(error as Error).message}`, { cause: error });
    }
    try {
      // pragma_table_info takes the table name as a bound parameter: no interpolation at all.
      const existing = (db.prepare('SELECT name FROM pragma_table_info(?) ORDER BY cid').all(table) as { name: string }[]).map(
        (r) => r.name,
      );
      if (existing.length === 0) throw new ArgumentError('table', `no table ${JSON.stringify(table)} in ${options.path}`);
      const columns = wanted ?? existing;
      columns.forEach((c, k) => {
        if (!existing.includes(c)) {
          throw new ArgumentError(
            `columns[${k}]`,
            `table ${JSON.stringify(table)} has no column ${JSON.stringify(c)} (it has ${existing.join(', ')})`,
          );
        }
        // Names from the schema itself may still be exotic; only plain names get quoted into SQL.
        requireIdentifier(`columns[${k}]`, c);
      });
      const lowered = new Set(existing.map((c) => c.toLowerCase()));
      const rowid = ROWID_ALIASES.find((a) => !lowered.has(a));
      if (rowid === undefined) throw new ArgumentError('table', `${table}: every rowid alias is taken by a column`);

      const from = `FROM "${table}"`;
      let select: StatementSync;
      let ids: StatementSync;
      try {
        select = db.prepare(`SELECT ${columns.map((c) => `"${c}"`).join(', ')} ${from} WHERE ${rowid} = ?`);
        ids = db.prepare(`SELECT ${rowid} ${from} ORDER BY ${rowid}`);
      } catch (error) {
        throw new ArgumentError('table', `${table} has no rowid (a view or a WITHOUT ROWID table?): ${(error as Error).message}`, {
          cause: error,
        });
      }
      select.setReadBigInts(options.readBigInts ?? false);
      ids.setReadBigInts(true);
      ids.setReturnArrays(true);

      // One read transaction, so the count and the rowid list agree.
      db.exec('BEGIN');
      try {
        const count = Number((db.prepare(`SELECT count(*) ${from}`).get() as { 'count(*)': number })['count(*)']);
        const rowids = new BigInt64Array(count);
        let k = 0;
        for (const r of ids.iterate() as Iterable<[bigint]>) rowids[k++] = r[0];
        this.#rowids = rowids;
        this.length = count;
      } finally {
        db.exec('COMMIT');
      }
      this.path = options.path;
      this.table = table;
      this.columns = [...columns];
      this.#db = db;
      this.#select = select;
    } catch (error) {
      db.close();
      throw error;
    }
  }

  /** The row at position `index` in rowid order (negative counts from the end). */
  get(index: number): SqliteRow {
    if (this.#closed) throw new ClosedError(`${this.path}: the dataset was closed`);
    const i = normalizeIndex(index, this.length);
    const rowid = this.#rowids[i]!;
    const found = this.#select.get(rowid) as Record<string, SqliteValue> | undefined;
    if (found === undefined) {
      throw new DatasetError(`${this.path}: table ${this.table} has no row with rowid ${rowid} any more (sample ${i})`, { index: i });
    }
    // Plain objects: node:sqlite returns null-prototype rows.
    const out: SqliteRow = {};
    for (const c of this.columns) out[c] = found[c] ?? null;
    return out;
  }

  /** Closes the database. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#db.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

function requireIdentifier(name: string, value: unknown): string {
  if (typeof value !== 'string' || !IDENTIFIER.test(value)) {
    throw new ArgumentError(
      name,
      `must be a plain SQL identifier (letters, digits, _; not starting with a digit), got ${JSON.stringify(value) ?? String(value)}`,
    );
  }
  return value;
}

function requireColumns(columns: unknown): string[] {
  if (!Array.isArray(columns) || columns.length === 0) throw new ArgumentError('columns', 'must be a non-empty array of column names');
  const seen = new Set<string>();
  return columns.map((c, k) => {
    const name = requireIdentifier(`columns[${k}]`, c);
    if (seen.has(name)) throw new ArgumentError(`columns[${k}]`, `${JSON.stringify(name)} is listed twice`);
    seen.add(name);
    return name;
  });
}
