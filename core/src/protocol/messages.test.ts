/** Control messages: every type round-trips; anything else is a FormatError naming the problem, never a crash. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { FormatError } from '../errors.ts';
import {
  LOADER_MESSAGE_TYPES,
  MAX_CONTROL_MESSAGE_BYTES,
  TRAINER_MESSAGE_TYPES,
  VersionMismatchError,
  decodeControlMessage,
  encodeControlMessage,
  newSessionId,
  type ControlMessage,
} from './messages.ts';

const enc = new TextEncoder();
const ALL = [...TRAINER_MESSAGE_TYPES, ...LOADER_MESSAGE_TYPES];

const examples: ControlMessage[] = [
  { type: 'hello', version: 1, session: 1, job: 'mnist', rank: 0, clientId: 'pod-0/rank-0', hostId: 'node-a', credits: 4, resume: null },
  { type: 'hello', version: 1, session: 2 ** 32 - 1, job: 'a', rank: 2 ** 32 - 1, clientId: 'c', hostId: 'h', credits: 0, resume: { epoch: 3, step: 0 } },
  { type: 'welcome', version: 1, session: 5, job: 'mnist', rank: 0, next: { epoch: 0, step: 0 }, maxCredits: 8, maxBatchBytes: 1 << 26, loaderId: 'l', hostId: 'h' },
  { type: 'refused', version: 1, session: 5, reason: 'busy', message: 'rank 0 is being served', supportedVersions: [1] },
  { type: 'credit', version: 1, session: 5, granted: 2 ** 40 },
  { type: 'ack', version: 1, session: 5, epoch: 1, step: 2 },
  { type: 'nack', version: 1, session: 5, epoch: 1, step: 2 },
  { type: 'nack', version: 1, session: 5, epoch: 1, step: 2, chunks: [0, 3] },
  { type: 'bye', version: 1, session: 5 },
  { type: 'end-of-epoch', version: 1, session: 5, epoch: 1, batches: 0 },
  { type: 'reset', version: 1, session: 5, reason: 'no such session' },
];

test('every message type round-trips through encode and decode', () => {
  for (const m of examples) assert.deepEqual(decodeControlMessage(encodeControlMessage(m), ALL), m);
  // Unknown fields are ignored (a newer peer may add some), never kept.
  const withExtra = decodeControlMessage(enc.encode(JSON.stringify({ ...examples[5], extra: { deep: [1] } })), ['ack']);
  assert.deepEqual(withExtra, examples[5]);
});

test('a message of a type the receiver does not take is refused by name', () => {
  assert.throws(() => decodeControlMessage(encodeControlMessage(examples[0]!), LOADER_MESSAGE_TYPES), /type "hello" is not one of welcome, refused, end-of-epoch, reset/);
});

test('another protocol version is a VersionMismatchError that keeps the session; a refusal of any version is readable', () => {
  const bytes = enc.encode(JSON.stringify({ ...examples[0], version: 2 }));
  assert.throws(
    () => decodeControlMessage(bytes, ['hello']),
    (e: unknown) => e instanceof VersionMismatchError && e instanceof FormatError && e.session === 1 && e.version === 2 && /protocol version 2 is not supported/.test(e.message),
  );
  const noSession = enc.encode(JSON.stringify({ type: 'hello', version: '1' }));
  assert.throws(() => decodeControlMessage(noSession, ['hello']), (e: unknown) => e instanceof VersionMismatchError && e.session === undefined);
  const refusal = { type: 'refused', version: 7, session: 3, reason: 'version', message: 'speaks 7', supportedVersions: [7] };
  assert.deepEqual(decodeControlMessage(enc.encode(JSON.stringify(refusal)), ['refused']), refusal);
});

test('hostile control messages are FormatErrors naming the field', () => {
  const cases: Array<[string | Uint8Array, RegExp]> = [
    ['', /not JSON/],
    ['{', /not JSON/],
    ['"hello"', /must be a JSON object, got "hello"/],
    ['[]', /must be a JSON object, got an array/],
    [new Uint8Array([0x7b, 0xc3, 0x28, 0x7d]), /not valid UTF-8/],
    ['{"type":"hello"}', /protocol version undefined is not supported/],
    [' '.repeat(MAX_CONTROL_MESSAGE_BYTES + 1), /8193 bytes is over the limit of 8192/],
    [JSON.stringify({ ...examples[0], job: 'a.b' }), /"hello": field job: must be a DNS label/],
    [JSON.stringify({ ...examples[0], job: 'x'.repeat(5000) }), /field job/],
    [JSON.stringify({ ...examples[0], clientId: 'has space' }), /field clientId: must be 1 to 128 printable ASCII/],
    [JSON.stringify({ ...examples[0], session: 0 }), /field session: Too small/],
    [JSON.stringify({ ...examples[0], rank: 2 ** 32 }), /field rank: Too big/],
    [JSON.stringify({ ...examples[0], resume: { epoch: 1 } }), /field resume\.step/],
    [JSON.stringify({ ...examples[0], credits: 1e300 }), /field credits/],
    [JSON.stringify({ ...examples[4], granted: Number.MAX_SAFE_INTEGER + 2 }), /field granted/],
    [JSON.stringify({ ...examples[7], chunks: [] }), /field chunks/],
    [JSON.stringify({ ...examples[7], chunks: [-1] }), /field chunks\.0/],
    [JSON.stringify({ ...examples[3], reason: 'because' }), /field reason/],
  ];
  for (const [input, message] of cases) {
    assert.throws(
      () => decodeControlMessage(typeof input === 'string' ? enc.encode(input) : input, ALL),
      (e: unknown) => e instanceof FormatError && message.test(e.message),
      String(message),
    );
  }
  // __proto__ from JSON is an own key, never a prototype: nothing is polluted.
  const proto = decodeControlMessage(enc.encode('{"type":"bye","version":1,"session":4,"__proto__":{"polluted":1}}'), ['bye']);
  assert.deepEqual(proto, { type: 'bye', version: 1, session: 4 });
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

test('random bytes and random JSON never throw anything but a FormatError', () => {
  const check = (bytes: Uint8Array): void => {
    try {
      decodeControlMessage(bytes, ALL);
    } catch (error) {
      assert.ok(error instanceof FormatError, String(error));
    }
  };
  fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), check));
  fc.assert(
    fc.property(fc.jsonValue(), fc.constantFrom(...ALL), (value, type) => {
      check(enc.encode(JSON.stringify(value)));
      if (typeof value === 'object' && value !== null && !Array.isArray(value)) check(enc.encode(JSON.stringify({ ...value, type, version: 1 })));
    }),
  );
});

test('encoding refuses an invalid message instead of sending it', () => {
  assert.throws(() => encodeControlMessage({ ...examples[5], epoch: -1 } as ControlMessage), /"ack": field epoch/);
});

test('session ids are in [1, 2^32 - 1] and differ from the previous one', () => {
  for (let i = 0; i < 1000; i++) {
    const id = newSessionId(i);
    assert.ok(Number.isInteger(id) && id >= 1 && id <= 2 ** 32 - 1 && id !== i);
  }
});
