/**
 * A nats-server for the local job: the binary the caller names (`npm start` installs the pinned
 * one with scripts/setup-servers.sh, as the tests do, and passes its path in
 * SHARDLINE_NATS_SERVER), on a free loopback port, core NATS only. Stopped with the job.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect } from 'nats';

export interface LocalNats {
  readonly url: string;
  /** Stops the server (SIGTERM, then SIGKILL after 5 s). Idempotent. */
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 15_000;

/**
 * Starts `binary` on 127.0.0.1 and waits until a client can connect.
 * @throws Error naming the binary and its last output when it exits or does not become ready.
 */
export async function startLocalNats(binary: string): Promise<LocalNats> {
  const port = await freePort();
  const child = spawn(binary, ['-a', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let output = '';
  child.stderr!.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
  let failed: Error | undefined;
  child.once('error', (error) => (failed = error));
  const url = `nats://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => stopChild(child);
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (failed !== undefined || child.exitCode !== null || child.signalCode !== null) {
      await stop();
      throw new Error(`nats-server (${binary}) did not start: ${failed?.message ?? `exited with ${child.exitCode ?? child.signalCode}`}\n${output}`);
    }
    try {
      const probe = await connect({ servers: url, reconnect: false, timeout: 1000 });
      await probe.close();
      return { url, stop };
    } catch {
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`nats-server (${binary}) was not ready on ${url} within ${READY_TIMEOUT_MS / 1000} s\n${output}`);
      }
      await sleep(50);
    }
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/** A TCP port free on loopback now. */
async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}
