/**
 * Who owns a segment file, and whether that owner still lives. A pid alone is not enough: pids
 * are reused, and a pid from another pid namespace (another container sharing `/dev/shm`) names
 * a different process here. So an owner is (pid, start time, pid namespace), read from `/proc`
 * on Linux, and an owner is declared dead only when that is certain; anything uncertain counts
 * as alive, because deleting a live loader's segments is worse than leaking a dead one's.
 */
import { readFileSync, readlinkSync } from 'node:fs';
import type { SegmentOwner } from './segment-file.ts';

/** Whether a segment's owner lives: `dead` only when certain. */
export type OwnerState = 'alive' | 'dead' | 'unknown';

/** The start time of a process in clock ticks since boot (field 22 of /proc/<pid>/stat), or 0n when it cannot be read. */
export function processStartTicks(pid: number): bigint {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // The command name (field 2) is in parentheses and may itself contain spaces and ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = fields[19];
    return ticks !== undefined && /^[0-9]+$/.test(ticks) ? BigInt(ticks) : 0n;
  } catch {
    return 0n;
  }
}

/** The inode of this process's pid namespace, or 0n when /proc does not tell. */
export function pidNamespaceInode(pid: number | 'self' = 'self'): bigint {
  try {
    const match = /^pid:\[([0-9]+)\]$/.exec(readlinkSync(`/proc/${pid}/ns/pid`));
    return match?.[1] !== undefined ? BigInt(match[1]) : 0n;
  } catch {
    return 0n;
  }
}

let self: SegmentOwner | undefined;

/** This process as a segment owner (computed once). */
export function currentOwner(): SegmentOwner {
  self ??= { pid: process.pid, startTicks: processStartTicks(process.pid), pidNamespace: pidNamespaceInode() };
  return self;
}

/**
 * Whether `owner` still lives, as seen from this process. `unknown` when it is in another pid
 * namespace (or the namespaces cannot be compared): its pid means nothing here.
 */
export function ownerState(owner: SegmentOwner, here: SegmentOwner = currentOwner()): OwnerState {
  if (owner.pidNamespace !== here.pidNamespace) return 'unknown';
  if (owner.pid === 0) return 'unknown';
  try {
    process.kill(owner.pid, 0);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ESRCH') return 'dead';
    // EPERM: a process of another user has the pid; whether it is our owner is decided below.
    if (code !== 'EPERM') return 'unknown';
  }
  if (owner.startTicks !== 0n) {
    const ticks = processStartTicks(owner.pid);
    // The pid lives but started at another time: the owner died and its pid was reused.
    if (ticks !== 0n && ticks !== owner.startTicks) return 'dead';
  }
  return 'alive';
}
