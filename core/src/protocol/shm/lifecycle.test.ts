/**
 * Segment lifecycle across processes: files removed on close and on every kind of process exit,
 * a SIGKILLed run's files reclaimed by the next ring, a live owner's files never touched.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, test } from 'node:test';
import { ShmRing } from './shm-ring.ts';

const CHILD = new URL('./ring-child.fixture.ts', import.meta.url).pathname;
let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'shm-lifecycle-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface Started {
  readonly child: ChildProcess;
  readonly paths: readonly string[];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string }>;
}

/** Spawns the fixture and waits for its JSON line (the ring exists and holds a batch). */
async function startChild(mode: string): Promise<Started> {
  const child = spawn(process.execPath, [CHILD, dir, mode], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal, stdout })),
  );
  const paths = await new Promise<string[]>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const line = stdout.split('\n')[0];
      if (stdout.includes('\n') && line !== undefined) resolve((JSON.parse(line) as { paths: string[] }).paths);
    });
    void exited.then(({ code, signal }) => reject(new Error(`child ended (code ${code}, signal ${signal}) before it was ready: ${stderr}`)));
  });
  return { child, paths, exited };
}

const allExist = (paths: readonly string[]) => paths.every((p) => existsSync(p));
const noneExist = (paths: readonly string[]) => paths.every((p) => !existsSync(p));

test('close() removes the segment files', async () => {
  const ring = await ShmRing.create({ job: 'j', rank: 0, slots: 3, slotBytes: 64, directory: dir, checkSpace: false });
  assert.equal(ring.paths.length, 3);
  assert.ok(allExist(ring.paths));
  await ring.close();
  assert.ok(noneExist(ring.paths));
  await ring.close();
});

for (const mode of ['natural', 'exit', 'throw'] as const) {
  test(`a child's segments are removed when it ends (${mode})`, async () => {
    const { paths, exited } = await startChild(mode);
    const { code } = await exited;
    assert.equal(code, mode === 'throw' ? 1 : 0);
    assert.equal(paths.length, 2);
    assert.ok(noneExist(paths), `left behind: ${paths.filter((p) => existsSync(p)).join(', ')}`);
  });
}

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`${signal} removes a child's segments and still kills it (the signal is not swallowed)`, async () => {
    const { child, paths, exited } = await startChild('hang');
    assert.ok(allExist(paths));
    child.kill(signal);
    const result = await exited;
    assert.equal(result.signal, signal);
    assert.ok(noneExist(paths));
  });
}

for (const mode of ['own-handler', 'own-once-handler'] as const) {
  test(`when the application handles SIGTERM itself, it decides; the segments go when it exits (${mode})`, async () => {
    const { child, paths, exited } = await startChild(mode);
    child.kill('SIGTERM');
    const result = await exited;
    assert.equal(result.code, 0, 'the application exited as it chose, not killed by a re-raised signal');
    assert.match(result.stdout, /handled/);
    assert.ok(noneExist(paths));
  });
}

test("a SIGKILLed run's segments are reclaimed by the next ring; a live owner's are never touched", async () => {
  const { child, paths, exited } = await startChild('hang');
  const names = paths.map((p) => basename(p));
  // The child lives: a new ring must leave its files alone.
  const mine = await ShmRing.create({ job: 'j', rank: 1, slots: 1, slotBytes: 64, directory: dir, checkSpace: false });
  assert.deepEqual(mine.reclaimed.removed, []);
  assert.deepEqual(
    mine.reclaimed.kept.filter((k) => names.includes(k.name)).map((k) => k.reason),
    names.map(() => 'owner is alive'),
  );
  assert.ok(allExist(paths));

  child.kill('SIGKILL');
  assert.equal((await exited).signal, 'SIGKILL');
  assert.ok(allExist(paths), 'SIGKILL cannot be caught: the files stay until reclaimed');

  const next = await ShmRing.create({ job: 'child-job', rank: 3, slots: 1, slotBytes: 64, directory: dir, checkSpace: false });
  assert.deepEqual([...next.reclaimed.removed].sort(), [...names].sort());
  assert.ok(noneExist(paths));
  // This process's own live ring was kept.
  assert.ok(allExist(mine.paths));
  assert.ok(next.reclaimed.kept.some((k) => k.name === basename(mine.paths[0] as string)));
  await Promise.all([mine.close(), next.close()]);
  assert.deepEqual(await readdir(dir), []);
});
