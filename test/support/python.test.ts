import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pythonPath, runPython } from './python.ts';

test('pythonPath finds the interop venv with the pinned safetensors', () => {
  const python = pythonPath();
  accessSync(python, constants.X_OK);
  assert.equal(pythonPath(), python);
  const out = runPython('import safetensors, numpy; print(safetensors.__version__, numpy.__version__)');
  assert.equal(out.trim(), '0.8.0 2.3.5');
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
