/**
 * Interop with the tools that make and read WebDataset shards in the wild, run for real: GNU tar
 * (the system command) and Python's `tarfile` driven by the reference reader's grouping rules
 * (webdataset's `tar_file_iterator` + `group_by_keys`, reproduced below with the standard library
 * only; the Python comes from scripts/setup-python.sh and these tests fail, never skip, without it).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { runPython } from '../../../../test/support/python.ts';
import { isMetadataName, splitMemberName } from './names.ts';
import { WebDatasetShardReader, readWebDatasetShard } from './reader.ts';
import { buildWebDatasetIndex } from './shard-index.ts';
import { encodeWebDatasetShard } from './writer.ts';

/** The reference reader's rules with tarfile: samples as {__key__, suffix: hex} plus member offsets. */
const PY_WEBDATASET = String.raw`
import json, re, sys, tarfile

def base_plus_ext(path):
    match = re.match(r"^((?:.*/|)[^.]+)[.]([^/]*)$", path)
    if not match:
        return None, None
    return match.group(1), match.group(2)

def files(stream):
    for tarinfo in stream:
        fname = tarinfo.name
        if not tarinfo.isreg() or fname is None:
            continue
        if "/" not in fname and fname.startswith("__") and fname.endswith("__"):
            continue
        if re.match(r"__[^/]*__($|/)", fname):
            continue
        yield fname, stream.extractfile(tarinfo).read(), tarinfo.offset_data

def samples(path):
    current = None
    with tarfile.open(path, mode="r|*") as stream:
        for fname, data, offset in files(stream):
            prefix, suffix = base_plus_ext(fname)
            if prefix is None:
                continue
            suffix = suffix.lower()
            if current is None or prefix != current["__key__"]:
                if current is not None:
                    yield current
                current = {"__key__": prefix, "offsets": {}}
            if suffix in current:
                raise ValueError(f"{fname}: duplicate file name in tar file {suffix}")
            current[suffix] = data.hex()
            current["offsets"][suffix] = offset
    if current is not None:
        yield current

print(json.dumps(list(samples(sys.argv[1]))))
`;

interface PySample {
  __key__: string;
  offsets: Record<string, number>;
  [suffix: string]: unknown;
}

function pythonSamples(file: string): PySample[] {
  return JSON.parse(runPython(PY_WEBDATASET, { args: [file] })) as PySample[];
}

/** Our streamed samples as {__key__, suffix: hex}. */
async function ourSamples(file: string): Promise<Record<string, string>[]> {
  const out: Record<string, string>[] = [];
  for await (const s of readWebDatasetShard(file)) {
    out.push(Object.fromEntries(Object.entries(s).map(([k, v]) => [k, typeof v === 'string' ? v : v.toString('hex')])));
  }
  return out;
}

/** Checks our streaming reader, index and random access against the Python reference on one tar. */
async function agreesWithReference(file: string): Promise<void> {
  const reference = pythonSamples(file);
  const ours = await ourSamples(file);
  assert.deepEqual(ours, reference.map(({ offsets: _, ...fields }) => fields));
  const index = await buildWebDatasetIndex(file, { write: false });
  assert.deepEqual(
    index.samples.map((s) => Object.fromEntries(s.members.map((m) => [m.suffix, m.offset]))),
    reference.map((s) => s.offsets),
  );
  const reader = await WebDatasetShardReader.open(index, file);
  for (let i = 0; i < reader.length; i++) {
    const s = await reader.get(i);
    assert.deepEqual(Object.fromEntries(Object.entries(s).map(([k, v]) => [k, typeof v === 'string' ? v : v.toString('hex')])), ours[i]);
  }
  await reader.close();
}

function withTempDir(fn: (dir: string) => Promise<void>): () => Promise<void> {
  return async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'shardline-wds-interop-'));
    try {
      await fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

function gnuTar(args: string[]): string {
  const result = spawnSync('tar', args, { encoding: 'utf8' });
  if (result.error !== undefined || result.status !== 0) {
    throw new Error(`tar ${args.join(' ')} failed (${result.error?.message ?? `exit ${result.status}`}): ${result.stderr}. GNU tar must be installed.`);
  }
  return result.stdout;
}

test(
  'Python (tarfile + the reference grouping) reads our shards as we do, at the offsets our index records',
  withTempDir(async (dir) => {
    const file = path.join(dir, 'ours.tar');
    const long = `${'d'.repeat(80)}/${'e'.repeat(80)}/${'f'.repeat(110)}`;
    writeFileSync(
      file,
      await encodeWebDatasetShard([
        { __key__: 'a/000', jpg: new Uint8Array([0xff, 0xd8, 0, 1]), cls: 3, json: { w: 2 } },
        { __key__: 'a/001', 'seg.png': new Uint8Array(1500).fill(9), txt: 'héllo' },
        { __key__: long, txt: 'long name' },
        { __key__: 'ünï/çödé', txt: 'pax path' },
        { __key__: 'a/000', txt: 'key again' },
      ]),
    );
    await agreesWithReference(file);
  }),
);

test(
  'we read tars written by Python tarfile in ustar, GNU and pax formats as the reference does',
  withTempDir(async (dir) => {
    const script = String.raw`
import io, sys, tarfile
fmt = {"ustar": tarfile.USTAR_FORMAT, "gnu": tarfile.GNU_FORMAT, "pax": tarfile.PAX_FORMAT}[sys.argv[2]]
long = "l" * 120
with tarfile.open(sys.argv[1], "w", format=fmt) as t:
    def add(name, data=b"", kind=tarfile.REGTYPE):
        info = tarfile.TarInfo(name)
        info.type = kind
        info.size = len(data) if kind == tarfile.REGTYPE else 0
        t.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    add("__meta__", b"meta")
    add("data", kind=tarfile.DIRTYPE)
    add("data/000.jpg", b"\xff\xd8" * 300)
    add("data/000.JSON", b'{"a": 1}')
    add("data/000.seg.png", b"png")
    add("data/link", kind=tarfile.SYMTYPE)
    add("data/001.txt", b"")
    add("notes", b"no suffix")
    add("data.v2/002.cls", b"5")
    if fmt != tarfile.USTAR_FORMAT:
        add(long + "/003.txt", b"long")
        add("ünï/004.txt", "ü".encode())
`;
    for (const format of ['ustar', 'gnu', 'pax']) {
      const file = path.join(dir, `${format}.tar`);
      runPython(script, { args: [file, format] });
      await agreesWithReference(file);
      const keys = (await ourSamples(file)).map((s) => s.__key__);
      assert.deepEqual(keys.slice(0, 3), ['data/000', 'data/001', 'data.v2/002'], format);
      if (format !== 'ustar') assert.deepEqual(keys.slice(3), [`${'l'.repeat(120)}/003`, 'ünï/004'], format);
    }
  }),
);

test(
  'GNU tar: its archives of a folder read as the reference reads them, and it extracts ours byte for byte',
  withTempDir(async (dir) => {
    const src = path.join(dir, 'src');
    const long = 'x'.repeat(150);
    mkdirSync(path.join(src, 'sub'), { recursive: true });
    writeFileSync(path.join(src, '000.jpg'), Buffer.alloc(1000, 1));
    writeFileSync(path.join(src, '000.cls'), '1');
    writeFileSync(path.join(src, '001.jpg'), Buffer.alloc(10, 2));
    writeFileSync(path.join(src, 'sub', '002.txt'), 'nested');
    writeFileSync(path.join(src, `${long}.txt`), 'long');
    writeFileSync(path.join(src, '__meta__'), 'skip me');
    symlinkSync('000.jpg', path.join(src, '003.jpg'));
    for (const format of ['gnu', 'posix', 'ustar']) {
      const file = path.join(dir, `gnu-${format}.tar`);
      // ustar cannot hold the 154-byte name: leave that file out there.
      const exclude = format === 'ustar' ? [`--exclude=./${long}.txt`] : [];
      gnuTar(['--sort=name', `--format=${format}`, '--owner=0', '--group=0', ...exclude, '-cf', file, '-C', src, '.']);
      await agreesWithReference(file);
      const keys = (await ourSamples(file)).map((s) => s.__key__);
      assert.deepEqual(keys, ['./000', './001', './sub/002', ...(format === 'ustar' ? [] : [`./${long}`])], format);
    }

    // GNU tar extracts what we write, file for file.
    const ours = path.join(dir, 'ours.tar');
    const samples = [
      { __key__: 'k/000', bin: new Uint8Array(777).fill(3), txt: 'a' },
      { __key__: `k/${'y'.repeat(140)}`, txt: 'long' },
      { __key__: 'k/ü', json: { u: 1 } },
    ];
    writeFileSync(ours, await encodeWebDatasetShard(samples));
    const out = path.join(dir, 'out');
    mkdirSync(out);
    gnuTar(['-xf', ours, '-C', out]);
    assert.deepEqual(readFileSync(path.join(out, 'k', '000.bin')), Buffer.alloc(777, 3));
    assert.equal(readFileSync(path.join(out, 'k', '000.txt'), 'utf8'), 'a');
    assert.equal(readFileSync(path.join(out, 'k', `${'y'.repeat(140)}.txt`), 'utf8'), 'long');
    assert.equal(readFileSync(path.join(out, 'k', 'ü.json'), 'utf8'), '{"u":1}');
    assert.deepEqual(gnuTar(['-tf', ours]).trim().split('\n'), ['k/000.bin', 'k/000.txt', `k/${'y'.repeat(140)}.txt`, 'k/ü.json']);
  }),
);

test('property: splitMemberName and isMetadataName agree with the reference regular expressions', () => {
  const names = fc.sample(fc.string({ unit: fc.constantFrom('a', 'B', '.', '/', '_', '-', '\n', 'é', '0'), maxLength: 12 }), { numRuns: 600, seed: 42 });
  names.push('a/.x', '__x__\n', '___', '__a__/b.c', 'x.y/z', '.', '', 'a.', '/a.b');
  const script = String.raw`
import json, re, sys
out = []
for name in json.load(sys.stdin):
    m = re.match(r"^((?:.*/|)[^.]+)[.]([^/]*)$", name)
    meta = ("/" not in name and name.startswith("__") and name.endswith("__")) or re.match(r"__[^/]*__($|/)", name) is not None
    out.append([[m.group(1), m.group(2).lower()] if m else None, meta])
print(json.dumps(out))
`;
  const reference = JSON.parse(runPython(script, { input: JSON.stringify(names) })) as [[string, string] | null, boolean][];
  names.forEach((name, i) => {
    const split = splitMemberName(name);
    assert.deepEqual(split === undefined ? null : [split.key, split.suffix], reference[i]![0], JSON.stringify(name));
    assert.equal(isMetadataName(name), reference[i]![1], JSON.stringify(name));
  });
});
