import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pythonPath, REPO_ROOT, runPython } from './python.ts';

const SETUP = path.join(REPO_ROOT, 'scripts', 'setup-python.sh');

test('pythonPath finds the interop venv with the pinned packages and CPU torch', () => {
  const python = pythonPath();
  accessSync(python, constants.X_OK);
  assert.equal(pythonPath(), python);
  const versions = 'import safetensors, numpy, torch; from nats.aio.client import __version__ as nats_py; print(safetensors.__version__, numpy.__version__, nats_py, torch.__version__)';
  assert.match(runPython(versions).trim(), /^0\.8\.0 1\.26\.4 2\.16\.0 1\.13\.\S+$/);
  // torch and numpy share memory both ways (fails with a numpy that torch was not built for).
  const roundTrip = 'import numpy, torch; t = torch.from_numpy(numpy.arange(4, dtype=numpy.int32)); t += 1; print(t.numpy().tolist(), torch.cuda.is_available())';
  assert.equal(runPython(roundTrip).trim(), '[1, 2, 3, 4] False');
});

test('the venv folder follows the pins in the setup script', () => {
  const script = readFileSync(SETUP, 'utf8');
  const copy = mkdtempSync(path.join(tmpdir(), 'shardline-pins-'));
  try {
    const venvOf = (text: string): string => {
      writeFileSync(path.join(copy, 'setup-python.sh'), text);
      const out = spawnSync('bash', [path.join(copy, 'setup-python.sh'), '--print-venv'], { encoding: 'utf8' });
      assert.equal(out.status, 0, out.stderr);
      return out.stdout.trim();
    };
    const base = venvOf(script);
    assert.equal(path.join(base, 'bin', 'python'), pythonPath());
    assert.notEqual(venvOf(script.replace('nats-py==2.16.0', 'nats-py==2.15.0')), base);
    assert.notEqual(venvOf(script.replace(/^DEB_PACKAGES="[^"]*"/m, 'DEB_PACKAGES="python3-torch"')), base);
  } finally {
    rmSync(copy, { recursive: true, force: true });
  }
});

test('runPython passes arguments and stdin, and returns stdout', () => {
  const out = runPython('import sys; print(sys.argv[1:], sys.stdin.read().upper())', { args: ['a', 'b c'], input: 'héllo' });
  assert.equal(out, "['a', 'b c'] HÉLLO\n");
});

test('a failing snippet throws with its stderr', () => {
  assert.throws(() => runPython('import sys; sys.stderr.write("boom"); sys.exit(3)'), /python exited with 3:\nboom/);
});

test('without a way to make the venv, pythonPath fails naming the setup command', () => {
  const cache = mkdtempSync(path.join(tmpdir(), 'shardline-nopython-'));
  try {
    const module = new URL('./python.ts', import.meta.url).href;
    const child = spawnSync(
      process.execPath,
      ['--input-type=module', '-e', `import { pythonPath } from ${JSON.stringify(module)}; pythonPath();`],
      { encoding: 'utf8', env: { ...process.env, SHARDLINE_CACHE: cache, PYTHON: '/nonexistent/python3' } },
    );
    assert.notEqual(child.status, 0);
    assert.match(child.stderr, /`bash scripts\/setup-python\.sh` failed \(exit code 1\)/);
    assert.match(child.stderr, /python3 not found/);
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
});
