/**
 * Smoke tests of the real nats-server: JetStream KV through nats.js, per-user subscribe
 * permissions, restart with client reconnect, and SHARDLINE_TEST_NATS_URL.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { connect, ErrorCode, Events, StringCodec, type NatsConnection, type NatsError } from 'nats';
import { natsConfig, startNats } from './nats.ts';

const sc = StringCodec();

// Fails instead of hanging when the awaited event never comes.
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function withConnection<T>(nc: NatsConnection, body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } finally {
    await nc.close();
  }
}

test('JetStream KV put/get through nats.js', async (t) => {
  const nats = await startNats({ jetstream: true });
  t.after(() => nats.stop());
  const nc = await connect({ servers: nats.url });
  await withConnection(nc, async () => {
    const kv = await nc.jetstream().views.kv('shardline-smoke');
    const revision = await kv.put('epoch', sc.encode('7'));
    assert.ok(revision >= 1);
    const entry = await kv.get('epoch');
    assert.equal(entry === null ? null : sc.decode(entry.value), '7');
    assert.equal(await kv.get('missing'), null);
  });
});

test('a user without permission is denied the subscribe', async (t) => {
  const nats = await startNats({
    allowExternal: false,
    users: [
      { user: 'admin', password: 'admin-pw' },
      { user: 'reader', password: 'reader-pw', publish: ['public.>'], subscribe: ['public.>', '_INBOX.>'] },
    ],
  });
  t.after(() => nats.stop());

  await assert.rejects(connect({ servers: nats.url, user: 'reader', pass: 'wrong' }), (e: NatsError) => e.code === ErrorCode.AuthorizationViolation);

  const nc = await connect({ servers: nats.url, user: 'reader', pass: 'reader-pw' });
  await withConnection(nc, async () => {
    const allowed = nc.subscribe('public.news', { max: 1 });
    const denied = nc.subscribe('shardline.default.job.rank.0.batches');
    const consumeDenied = (async () => {
      for await (const _ of denied) assert.fail('a denied subscription received a message');
    })();
    await assert.rejects(within(consumeDenied, 5000, 'the permissions violation'), (e: NatsError) => {
      assert.equal(e.code, ErrorCode.PermissionsViolation);
      assert.equal(e.permissionContext?.operation, 'subscription');
      assert.equal(e.permissionContext?.subject, 'shardline.default.job.rank.0.batches');
      return true;
    });
    // The allowed subscription on the same connection still works.
    nc.publish('public.news', sc.encode('hello'));
    for await (const m of allowed) assert.equal(sc.decode(m.data), 'hello');
  });

  // The unrestricted user may subscribe to the same subject.
  const admin = await connect({ servers: nats.url, user: 'admin', pass: 'admin-pw' });
  await withConnection(admin, async () => {
    const sub = admin.subscribe('shardline.default.job.rank.0.batches', { max: 1 });
    admin.publish('shardline.default.job.rank.0.batches', sc.encode('b'));
    for await (const m of sub) assert.equal(sc.decode(m.data), 'b');
  });
});

test('restart mid-test: the client reconnects and JetStream state survives', async (t) => {
  const nats = await startNats({ jetstream: true, allowExternal: false });
  t.after(() => nats.stop());
  const nc = await connect({ servers: nats.url, reconnectTimeWait: 100, maxReconnectAttempts: -1 });
  await withConnection(nc, async () => {
    const kv = await nc.jetstream().views.kv('state');
    await kv.put('cursor', sc.encode('42'));

    const reconnected = (async () => {
      for await (const s of nc.status()) if (s.type === Events.Reconnect) return s.data;
      return undefined;
    })();
    await nats.restart();
    assert.equal(await within(reconnected, 10_000, 'the reconnect'), `127.0.0.1:${nats.port}`);

    const echo = nc.subscribe('echo', { max: 1, callback: (_err, m) => m.respond(m.data) });
    const reply = await nc.request('echo', sc.encode('after restart'), { timeout: 5000 });
    assert.equal(sc.decode(reply.data), 'after restart');
    await echo.closed;
    const entry = await kv.get('cursor');
    assert.equal(entry === null ? null : sc.decode(entry.value), '42');
  });
});

test('SHARDLINE_TEST_NATS_URL: an external server is used, never stopped or restarted', async (t) => {
  const own = await startNats({ allowExternal: false, jetstream: false });
  t.after(() => own.stop());
  const saved = process.env.SHARDLINE_TEST_NATS_URL;
  process.env.SHARDLINE_TEST_NATS_URL = own.url;
  t.after(() => {
    if (saved === undefined) delete process.env.SHARDLINE_TEST_NATS_URL;
    else process.env.SHARDLINE_TEST_NATS_URL = saved;
  });
  const external = await startNats();
  assert.equal(external.external, true);
  assert.equal(external.url, own.url);
  assert.equal(external.port, own.port);
  await assert.rejects(external.restart(), /cannot restart the external server/);
  await external.stop();
  const nc = await connect({ servers: external.url });
  await nc.close();
});

test('natsConfig writes users, permissions and the JetStream store; bad users are refused', async () => {
  const text = natsConfig(4222, 8222, '/tmp/store "x"', {
    users: [{ user: 'r', password: 'p"w', subscribe: ['a.>'] }],
  });
  assert.match(text, /listen: "127\.0\.0\.1:4222"/);
  assert.match(text, /jetstream \{ store_dir: "\/tmp\/store \\"x\\""/);
  assert.match(text, /\{ user: "r", password: "p\\"w", permissions: \{ subscribe: \{ allow: \["a\.>"\] \} \} \}/);
  assert.doesNotMatch(natsConfig(1, 2, '/s', { jetstream: false }), /jetstream/);
  await assert.rejects(startNats({ users: [{ user: '', password: 'x' }] }), /users\[0\]\.user: must be a non-empty string, got ""/);
  await assert.rejects(startNats({ users: [{ user: 'a', password: 'x', subscribe: ['a b'] }] }), /users\[0\]\.subscribe/);
});
