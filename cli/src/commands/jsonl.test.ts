import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { FormatError } from '@shardline/core';
import { type JsonlLine, type ReadJsonlLinesOptions, inferJsonlColumns, parseJsonlObject, readJsonlLines } from './jsonl.ts';
import { tempDir } from './test-support.ts';

async function lines(file: string, options?: ReadJsonlLinesOptions): Promise<JsonlLine[]> {
  const out: JsonlLine[] = [];
  for await (const line of readJsonlLines(file, options)) out.push(line);
  return out;
}

test('lines keep their numbers across blank lines, CRLF and a missing final newline', async (t) => {
  const file = path.join(tempDir(t, 'jsonl'), 'a.jsonl');
  const content = '\uFEFF{"a": 1}\r\n\n   \n{"a": 2}\n\uFEFF{"a": "é"}';
  writeFileSync(file, content);
  const got = await lines(file);
  // Only the file's own BOM goes; one inside is data (and JSON.parse refuses it, naming the line).
  assert.deepEqual(got.map((l) => [l.line, l.text]), [[1, '{"a": 1}'], [4, '{"a": 2}'], [5, '\uFEFF{"a": "é"}']]);
  assert.equal(got.at(-1)!.bytesRead, Buffer.byteLength(content));
});

test('property: lines come back whole and numbered, however the reads cut them', async (t) => {
  const dir = tempDir(t, 'jsonl');
  let n = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.string({ unit: 'grapheme', maxLength: 40 }).map((s) => s.replace(/[\r\n]/g, '')), { maxLength: 20 }),
      fc.integer({ min: 1, max: 64 }),
      async (texts, chunkBytes) => {
        const file = path.join(dir, `${n++}.jsonl`);
        // A BOM at the very start is the file's, not the first line's.
        if (texts[0] !== undefined) texts[0] = texts[0].replace(/^\uFEFF+/, '');
        writeFileSync(file, texts.join('\n'));
        const expected = texts.map((text, i) => ({ line: i + 1, text })).filter((l) => l.text.trim() !== '');
        // Multi-byte characters and newlines fall on chunk boundaries as often as not.
        assert.deepEqual((await lines(file, { chunkBytes })).map(({ line, text }) => ({ line, text })), expected);
      },
    ),
    { numRuns: 40 },
  );
});

test('a line over the limit, or not UTF-8, is refused naming its number', async (t) => {
  const dir = tempDir(t, 'jsonl');
  const long = path.join(dir, 'long.jsonl');
  writeFileSync(long, `{"a": 1}\n{"b": "${'x'.repeat(200)}"}\n`);
  await assert.rejects(lines(long, { maxLineBytes: 100, chunkBytes: 7 }), (e: Error) => e instanceof FormatError && /long\.jsonl: line 2 is longer than 100 bytes/.test(e.message));
  const noNewline = path.join(dir, 'one.jsonl');
  writeFileSync(noNewline, 'x'.repeat(3 * 1024 * 1024));
  await assert.rejects(lines(noNewline, { maxLineBytes: 1024 * 1024 }), /one\.jsonl: line 1 is longer than 1048576 bytes/);
  const latin1 = path.join(dir, 'latin1.jsonl');
  writeFileSync(latin1, Buffer.concat([Buffer.from('{"a": 1}\n{"a": "'), Buffer.from([0xe9]), Buffer.from('"}\n')]));
  await assert.rejects(lines(latin1), /latin1\.jsonl: line 2 is not valid UTF-8/);
});

test('objects parse with integers told from floats and big integers kept exactly; anything else is refused', () => {
  const parsed = parseJsonlObject('{"i": 3, "f": 3.0, "e": 1e3, "big": 123456789012345678901, "s": "x", "nested": {"n": 2}}', 'd.jsonl: line 1');
  assert.deepEqual([...parsed.integerKeys].sort(), ['big', 'i']);
  assert.equal(parsed.value.big, 123456789012345678901n);
  assert.deepEqual(inferJsonlColumns(parsed), { i: 'int64', f: 'float64', e: 'float64', big: 'int64', s: 'str', nested: 'json' });
  assert.deepEqual(inferJsonlColumns(parseJsonlObject('{"b": true, "n": null, "a": [1]}', 'x')), { b: 'json', n: 'json', a: 'json' });
  for (const [text, what] of [['[1, 2]', 'an array'], ['"text"', 'a string'], ['7', 'a number'], ['null', 'null']]) {
    assert.throws(() => parseJsonlObject(text!, 'd.jsonl: line 9'), new RegExp(`^FormatError: d\\.jsonl: line 9: must be a JSON object \\(one sample\\), got ${what}$`));
  }
  assert.throws(() => parseJsonlObject('{"a": 1,}', 'd.jsonl: line 4'), /d\.jsonl: line 4: invalid JSON/);
  // A "__proto__" key is data, never the prototype.
  assert.deepEqual(Object.keys(inferJsonlColumns(parseJsonlObject('{"__proto__": 1}', 'x'))), ['__proto__']);
});
