import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { ArgumentError, ClosedError, DatasetError, IndexOutOfRangeError } from '../errors.ts';
import { SqliteDataset } from './sqlite.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shardline-sqlite-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** samples(rowid, label, name, image) with rowids inserted out of order and with gaps. */
function makeDb(name = 'data.db'): string {
  const file = path.join(dir, name);
  const db = new DatabaseSync(file);
  db.exec(`CREATE TABLE samples (label INTEGER, name TEXT, image BLOB, score REAL);
           CREATE TABLE other (x INTEGER);
           CREATE TABLE odd (rowid TEXT, v INTEGER);
           CREATE TABLE norowid (k INTEGER PRIMARY KEY, v INTEGER) WITHOUT ROWID;
           CREATE VIEW samples_view AS SELECT label FROM samples;`);
  const insert = db.prepare('INSERT INTO samples (rowid, label, name, image, score) VALUES (?, ?, ?, ?, ?)');
  for (const rowid of [30, 10, 20, 1000, 5]) insert.run(rowid, rowid % 7, `n${rowid}`, new Uint8Array([rowid & 255, 1]), rowid / 2);
  db.prepare('INSERT INTO odd (rowid, v) VALUES (?, ?)').run('a', 1);
  db.prepare('INSERT INTO odd (rowid, v) VALUES (?, ?)').run('b', 2);
  db.close();
  return file;
}

const file = makeDb();

test('rows come in rowid order, by index, negative indices from the end', () => {
  using ds = new SqliteDataset({ path: file, table: 'samples' });
  assert.equal(ds.length, 5);
  assert.deepEqual(ds.columns, ['label', 'name', 'image', 'score']);
  assert.deepEqual(ds.get(0), { label: 5, name: 'n5', image: new Uint8Array([5, 1]), score: 2.5 });
  assert.deepEqual(
    [0, 1, 2, 3, 4].map((i) => ds.get(i).name),
    ['n5', 'n10', 'n20', 'n30', 'n1000'],
  );
  assert.equal(ds.get(-1).name, 'n1000');
  const image = ds.get(1).image;
  assert.ok(image instanceof Uint8Array);
  assert.throws(() => ds.get(5), IndexOutOfRangeError);
  assert.throws(() => ds.get(-6), IndexOutOfRangeError);
});

test('selected columns only, in the order asked', () => {
  using ds = new SqliteDataset({ path: file, table: 'samples', columns: ['score', 'label'] });
  assert.deepEqual(ds.get(2), { score: 10, label: 6 });
  assert.deepEqual(Object.keys(ds.get(2)), ['score', 'label']);
});

test('readBigInts returns integers as bigint', () => {
  using ds = new SqliteDataset({ path: file, table: 'samples', columns: ['label'], readBigInts: true });
  assert.deepEqual(ds.get(0), { label: 5n });
});

test('a column named rowid does not hide the real rowid', () => {
  using ds = new SqliteDataset({ path: file, table: 'odd' });
  assert.equal(ds.length, 2);
  assert.deepEqual(ds.get(0), { rowid: 'a', v: 1 });
  assert.deepEqual(ds.get(1), { rowid: 'b', v: 2 });
});

test('SQL injection attempts in table and column names are refused, and the database is unchanged', () => {
  const attempts = [
    'samples; DROP TABLE other',
    'samples"; DROP TABLE other; --',
    "samples' OR '1'='1",
    'samples WHERE 1=1',
    'sam"ples',
    '',
    '1samples',
    'samples--',
  ];
  for (const table of attempts) {
    assert.throws(
      () => new SqliteDataset({ path: file, table }),
      (e: unknown) => e instanceof ArgumentError && e.argument === 'table',
      `table ${JSON.stringify(table)}`,
    );
  }
  for (const column of ['label, (SELECT 1)', 'label"--', '*', 'label FROM other --']) {
    assert.throws(
      () => new SqliteDataset({ path: file, table: 'samples', columns: ['name', column] }),
      (e: unknown) => e instanceof ArgumentError && e.argument === 'columns[1]',
      `column ${JSON.stringify(column)}`,
    );
  }
  const db = new DatabaseSync(file, { readOnly: true });
  assert.equal((db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name = 'other'").get() as { n: number }).n, 1);
  db.close();
});

test('names must exist: unknown tables and columns are refused, naming them', () => {
  assert.throws(
    () => new SqliteDataset({ path: file, table: 'missing' }),
    (e: unknown) => e instanceof ArgumentError && e.argument === 'table' && /no table "missing"/.test(e.message),
  );
  assert.throws(
    () => new SqliteDataset({ path: file, table: 'samples', columns: ['label', 'nope'] }),
    (e: unknown) => e instanceof ArgumentError && e.argument === 'columns[1]' && /no column "nope"/.test(e.message),
  );
  assert.throws(
    () => new SqliteDataset({ path: file, table: 'samples', columns: ['label', 'label'] }),
    (e: unknown) => e instanceof ArgumentError && e.argument === 'columns[1]',
  );
  assert.throws(() => new SqliteDataset({ path: file, table: 'samples', columns: [] }), (e: unknown) => e instanceof ArgumentError && e.argument === 'columns');
});

test('tables without a rowid (views, WITHOUT ROWID) are refused', () => {
  for (const table of ['norowid', 'samples_view']) {
    assert.throws(
      () => new SqliteDataset({ path: file, table }),
      (e: unknown) => e instanceof ArgumentError && e.argument === 'table' && /no rowid/.test(e.message),
    );
  }
});

test('bad paths and options are refused, naming the argument', () => {
  const isArg = (name: string) => (e: unknown) => e instanceof ArgumentError && e.argument === name;
  assert.throws(() => new SqliteDataset(undefined as never), isArg('options'));
  assert.throws(() => new SqliteDataset({ path: '', table: 'samples' }), isArg('path'));
  assert.throws(() => new SqliteDataset({ path: path.join(dir, 'no', 'such.db'), table: 'samples' }), isArg('path'));
  assert.throws(() => new SqliteDataset({ path: file, table: 42 as never }), isArg('table'));
});

test('a row deleted after opening is a DatasetError; close() makes get throw ClosedError', () => {
  const own = makeDb('deleted.db');
  const ds = new SqliteDataset({ path: own, table: 'samples' });
  const db = new DatabaseSync(own);
  db.exec('DELETE FROM samples WHERE rowid = 20');
  db.close();
  assert.throws(() => ds.get(2), (e: unknown) => e instanceof DatasetError && e.index === 2 && /rowid 20/.test(e.message));
  assert.equal(ds.get(3).name, 'n30');
  ds.close();
  ds.close();
  assert.throws(() => ds.get(0), ClosedError);
});

test('an empty table is an empty dataset', () => {
  using ds = new SqliteDataset({ path: file, table: 'other' });
  assert.equal(ds.length, 0);
  assert.throws(() => ds.get(0), IndexOutOfRangeError);
});
