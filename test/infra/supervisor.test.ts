/**
 * Tests of the process supervisor and binary lookup: clear start errors with the server's last
 * output, readiness timeouts, the missing-binary message, and no orphans when the test process
 * exits without stopping its servers or is killed outright.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { SETUP_COMMAND, serverBinary } from './binaries.ts';
import { makeTempDir, removeTempDir, spawnServer } from './supervisor.ts';

const SUPERVISOR = path.join(import.meta.dirname, 'supervisor.ts');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (alive(pid)) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return true;
}

test('a server that exits before it is ready is reported with its exit code and last output', async (t) => {
  const dir = makeTempDir('sup');
  t.after(() => removeTempDir(dir));
  await assert.rejects(
    spawnServer({ name: 'failing', command: '/bin/sh', args: ['-c', 'echo starting; echo "bind: address already in use" >&2; exit 3'], dir, ready: async () => false }),
    (e: Error) => {
      assert.match(e.message, /^failing exited before it was ready \(exit code 3\)/);
      assert.match(e.message, /last output:\n(.|\n)*bind: address already in use/);
      assert.match(e.message, new RegExp(`log: ${dir}/server.log`));
      return true;
    },
  );
});

test('a server that never becomes ready is killed after the timeout', async (t) => {
  const dir = makeTempDir('sup');
  t.after(() => removeTempDir(dir));
  let pid = 0;
  await assert.rejects(
    spawnServer({
      name: 'sleepy',
      command: '/bin/sh',
      args: ['-c', 'echo $$ >&2; exec sleep 60'],
      dir,
      readyTimeoutMs: 300,
      ready: async () => false,
    }).catch((e: Error) => {
      pid = Number(/last output:\n(\d+)/.exec(e.message)?.[1]);
      throw e;
    }),
    /sleepy was not ready within 300 ms/,
  );
  assert.ok(pid > 0);
  assert.equal(alive(pid), false);
});

test('a missing binary names the setup command, in CI and outside', (t) => {
  const saved = { cache: process.env.SHARDLINE_CACHE, ci: process.env.CI };
  t.after(() => {
    for (const [key, value] of [['SHARDLINE_CACHE', saved.cache], ['CI', saved.ci]] as const) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  });
  process.env.SHARDLINE_CACHE = '/nonexistent/shardline-cache';
  process.env.CI = 'true';
  assert.throws(() => serverBinary('nats-server'), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'SERVER_MISSING');
    assert.match(e.message, /^CI \(CI=true\) cannot run this test: nats-server 2\.10\.\d+ is not installed/);
    assert.ok(e.message.includes(`Run \`${SETUP_COMMAND}\``));
    return true;
  });
  delete process.env.CI;
  assert.throws(() => serverBinary('prometheus'), (e: Error) => e.message.startsWith('prometheus 2.') && e.message.includes(SETUP_COMMAND));
});

// Runs a Node process that starts `sleep` through the supervisor, prints its pid, then does `then`.
// The helper's temp dirs go under a folder of this test, since a SIGKILLed helper cannot clean up.
async function orphanCase(then: string, tmp: string): Promise<{ parent: number; server: number }> {
  const script = `
    import { spawnServer, makeTempDir } from ${JSON.stringify(SUPERVISOR)};
    const dir = makeTempDir('orphan');
    const p = await spawnServer({ name: 'sleep', command: '/bin/sleep', args: ['60'], dir, ready: async () => true });
    process.stdout.write(p.pid + '\\n');
    ${then}
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, TMPDIR: tmp },
  });
  const server = await new Promise<number>((resolve, reject) => {
    child.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once('exit', (code) => reject(new Error(`helper exited early with ${code}`)));
  });
  assert.ok(server > 0 && alive(server), 'the server runs');
  return { parent: child.pid!, server };
}

test('no orphan when the test process exits without stopping its server', async (t) => {
  const tmp = makeTempDir('orphans');
  t.after(() => removeTempDir(tmp));
  const { server } = await orphanCase('process.exitCode = 1; setTimeout(() => process.exit(), 50);', tmp);
  assert.equal(await waitGone(server, 5000), true, `server ${server} outlived its test process`);
});

test('no orphan when the test process is interrupted (SIGTERM) or killed (SIGKILL)', async (t) => {
  const tmp = makeTempDir('orphans');
  t.after(() => removeTempDir(tmp));
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    const { parent, server } = await orphanCase('setInterval(() => {}, 1000);', tmp);
    process.kill(parent, signal);
    assert.equal(await waitGone(server, 5000), true, `server ${server} outlived its test process after ${signal}`);
  }
});
