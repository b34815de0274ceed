/** Segment names (built and parsed back, hostile names refused), header round trips and hostile headers, owner liveness. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import fc from 'fast-check';
import { FormatError } from '../../errors.ts';
import { currentOwner, ownerState } from './owner.ts';
import { decodeHeader, encodeHeader, HEADER_BYTES, parseSegmentFileName, ringName, segmentFileName, SlotState, type SegmentHeader } from './segment-file.ts';

test('names are built from checked tokens and parse back, even with hyphens in the job', () => {
  const name = segmentFileName(ringName('my-job-2', 7, 'abc123'), 5);
  assert.equal(name, 'shardline-my-job-2-7-abc123-5');
  assert.deepEqual(parseSegmentFileName(name), { job: 'my-job-2', rank: 7, ringId: 'abc123', slot: 5 });
  assert.throws(() => ringName('../x', 0, 'a'), /job/);
  assert.throws(() => ringName('x', 0, 'a/b'), /ringId/);
  assert.throws(() => ringName('x', -1, 'a'), /rank/);
  for (const bad of ['shardline-x-0-a', 'shardline-x-0-a-01', 'shardline--0-a-1', 'shardline-x-0-a-1024', 'shardline-x-0-A-1', 'other-x-0-a-1', 'shardline-x/y-0-a-1', 'shardline-x-99999999999-a-1']) {
    assert.equal(parseSegmentFileName(bad), undefined, bad);
  }
});

test('property: every valid (job, rank, ringId, slot) names a file that parses back to it', () => {
  const label = fc.stringMatching(/^[a-z0-9](?:[a-z0-9-]{0,20}[a-z0-9])?$/);
  fc.assert(
    fc.property(label, fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.stringMatching(/^[a-z0-9]{1,32}$/), fc.integer({ min: 0, max: 1023 }), (job, rank, ringId, slot) => {
      assert.deepEqual(parseSegmentFileName(segmentFileName(ringName(job, rank, ringId), slot)), { job, rank, ringId, slot });
    }),
  );
});

const header: SegmentHeader = { slot: 3, owner: { pid: 42, startTicks: 123n, pidNamespace: 456n }, capacity: 1000, generation: 9, length: 10, state: SlotState.Ready, crc32: 0xdeadbeef };

test('headers round-trip and hostile headers are FormatErrors naming the field', () => {
  const bytes = encodeHeader(header);
  assert.equal(bytes.byteLength, HEADER_BYTES);
  assert.deepEqual(decodeHeader(bytes, 'f'), header);
  const tamper = (at: number, write: (b: Buffer) => void) => {
    const b = Buffer.from(bytes);
    write(b);
    return () => decodeHeader(b, `f@${at}`);
  };
  assert.throws(() => decodeHeader(bytes.subarray(0, 10), 'f'), /the header has 10 bytes, expected 128/);
  assert.throws(tamper(8, (b) => b.writeUInt32LE(2, 8)), /layout version 2 is not supported/);
  assert.throws(tamper(12, (b) => b.writeUInt32LE(64, 12)), /header size 64 is not 128/);
  assert.throws(tamper(48, (b) => b.writeUInt32LE(3, 48)), /slot state 3 is not 0, 1 or 2/);
  assert.throws(tamper(24, (b) => b.writeBigUInt64LE(2n ** 63n, 24)), /capacity 9223372036854775808 is not a safe integer/);
  assert.throws(tamper(24, (b) => b.writeBigUInt64LE(0n, 24)), /capacity 0 is not in \[1, 4294967295\]/);
  assert.throws(tamper(40, (b) => b.writeBigUInt64LE(1001n, 40)), /batch length 1001 is over the slot capacity 1000/);
  assert.throws(tamper(32, (b) => b.writeBigUInt64LE(2n ** 60n, 32)), FormatError);
});

test('owner liveness: this process is alive; a dead pid, a reused pid are dead; another pid namespace is unknown', () => {
  const me = currentOwner();
  assert.equal(me.pid, process.pid);
  assert.equal(ownerState(me), 'alive');
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  assert.equal(ownerState({ ...me, pid: Number(child.stdout.toString()) }), 'dead');
  if (me.startTicks !== 0n) assert.equal(ownerState({ ...me, startTicks: me.startTicks + 1n }), 'dead');
  assert.equal(ownerState({ ...me, pidNamespace: me.pidNamespace + 1n }), 'unknown');
  assert.equal(ownerState({ ...me, pid: 0 }), 'unknown');
});
