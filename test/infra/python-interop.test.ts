/**
 * The Python side of the test infrastructure, run for real: nats-py answering a request from
 * nats.js through a real nats-server, and torch (CPU) reading a batch that our safetensors
 * encoder wrote. The venv comes from scripts/setup-python.sh; these tests fail, never skip,
 * when it cannot be had.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { connect, StringCodec } from 'nats';
import { tensor } from '../../core/src/tensor.ts';
import { encodeBatch } from '../../core/src/wire/safetensors.ts';
import { pythonPath, runPython, REPO_ROOT } from '../support/python.ts';
import { startNats } from './nats.ts';

const sc = StringCodec();

// Subscribes, prints "ready" once the subscription is on the server, answers one request with
// the upper-cased payload and the Python/nats-py versions, then exits.
const RESPONDER = String.raw`
import asyncio, sys
import nats
from nats.aio.client import __version__ as nats_py_version

async def main():
    nc = await nats.connect(sys.argv[1])
    done = asyncio.Event()
    async def handler(msg):
        await msg.respond(("%s|nats-py %s" % (msg.data.decode().upper(), nats_py_version)).encode())
        done.set()
    await nc.subscribe(sys.argv[2], cb=handler)
    await nc.flush()
    print("ready", flush=True)
    await asyncio.wait_for(done.wait(), 20)
    await nc.drain()

asyncio.run(main())
`;

test('nats-py answers a request from nats.js through a real nats-server', async (t) => {
  const nats = await startNats({ jetstream: false });
  t.after(() => nats.stop());
  const subject = 'shardline.interop.echo';
  const child = spawn(pythonPath(), ['-c', RESPONDER, nats.url, subject], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  // Wait for "ready" so the request cannot reach the server before the subscription does.
  await new Promise<void>((resolve, reject) => {
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      if (stdout.includes('ready\n')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`the nats-py responder exited with ${code} before subscribing:\n${stderr}`)));
  });

  const nc = await connect({ servers: nats.url });
  try {
    const reply = await nc.request(subject, sc.encode('hello from nats.js'), { timeout: 10_000 });
    assert.equal(sc.decode(reply.data), 'HELLO FROM NATS.JS|nats-py 2.16.0');
  } finally {
    await nc.close();
  }
  assert.equal(await exited, 0, stderr);
});

// Loads the file with safetensors.torch and, independently, with torch.frombuffer over the raw
// bytes, and prints what torch sees.
const TORCH_READER = String.raw`
import json, struct, sys
import torch
from safetensors import safe_open
from safetensors.torch import load_file

path = sys.argv[1]
tensors = load_file(path)
with safe_open(path, framework="pt") as f:
    metadata = f.metadata()
with open(path, "rb") as f:
    blob = f.read()
n = struct.unpack("<Q", blob[:8])[0]
header = json.loads(blob[8:8 + n])
x = header["x"]
start, end = x["data_offsets"]
raw = torch.frombuffer(bytearray(blob[8 + n + start:8 + n + end]), dtype=torch.float32).reshape(x["shape"])
out = {
    "torch": torch.__version__,
    "names": sorted(tensors),
    "x": {"dtype": str(tensors["x"].dtype), "shape": list(tensors["x"].shape), "values": tensors["x"].tolist(),
          "row_sums": tensors["x"].sum(dim=1).tolist()},
    "frombuffer_equal": bool(torch.equal(raw, tensors["x"])),
    "label": {"dtype": str(tensors["label"].dtype), "values": tensors["label"].tolist()},
    "mask": {"dtype": str(tensors["mask"].dtype), "values": tensors["mask"].tolist()},
    "half": {"dtype": str(tensors["half"].dtype), "values": tensors["half"].float().tolist()},
    "metadata": metadata,
}
print(json.dumps(out))
`;

test('torch loads a batch written by our encoder', (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'shardline-torch-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'batch.safetensors');
  const bytes = encodeBatch(
    {
      x: tensor('float32', [2, 3], new Float32Array([0.5, -1.25, 3, 1e-3, 2.5, -7])),
      label: tensor('int64', [2], new BigInt64Array([7n, -(2n ** 40n)])),
      mask: tensor('bool', [2], new Uint8Array([1, 0])),
      half: tensor('bfloat16', [2], new Uint16Array([0x3fc0, 0xc040])), // 1.5, -3
    },
    { job: 'interop', epoch: 2, rank: 1, step: 5, sampleIds: [11, 4] },
  );
  writeFileSync(file, bytes);
  const seen = JSON.parse(runPython(TORCH_READER, { args: [file] })) as Record<string, unknown>;
  assert.match(String(seen.torch), /^1\.13\./);
  assert.deepEqual(seen.names, ['half', 'label', 'mask', 'x']);
  assert.deepEqual(seen.x, {
    dtype: 'torch.float32',
    shape: [2, 3],
    values: [
      [0.5, -1.25, 3],
      [Math.fround(1e-3), 2.5, -7],
    ],
    row_sums: [2.25, Math.fround(Math.fround(Math.fround(1e-3) + 2.5) - 7)],
  });
  assert.equal(seen.frombuffer_equal, true);
  assert.deepEqual(seen.label, { dtype: 'torch.int64', values: [7, -(2 ** 40)] });
  assert.deepEqual(seen.mask, { dtype: 'torch.bool', values: [true, false] });
  assert.deepEqual(seen.half, { dtype: 'torch.bfloat16', values: [1.5, -3] });
  const metadata = seen.metadata as Record<string, string>;
  assert.equal(metadata.epoch, '2');
  assert.equal(metadata.rank, '1');
  assert.equal(metadata.step, '5');
  assert.equal(metadata.job, 'interop');
});
