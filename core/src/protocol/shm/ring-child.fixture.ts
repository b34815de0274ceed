/**
 * A child process for the lifecycle tests (not a test itself): creates a ring in the directory
 * given as argv[2], writes one batch, prints the segment paths as one JSON line, then ends the way
 * argv[3] says: `hang` (until killed), `exit` (process.exit), `natural` (the event loop drains),
 * `throw` (an uncaught exception), `own-handler` (the app handles SIGTERM itself, then exits),
 * `own-once-handler` (the same with `process.once`, registered before the ring, as the CLI does).
 */
import { ShmRing } from './shm-ring.ts';

const [directory, mode] = process.argv.slice(2);
if (directory === undefined || mode === undefined) throw new Error('usage: ring-child.fixture.ts <directory> <mode>');
if (mode === 'own-once-handler') {
  process.once('SIGTERM', () => {
    process.stdout.write('handled\n');
    setTimeout(() => process.exit(0), 10);
  });
}
const ring = await ShmRing.create({ job: 'child-job', rank: 3, slots: 2, slotBytes: 1024, directory, checkSpace: false });
await ring.write(new Uint8Array([1, 2, 3]));
if (mode === 'own-handler') {
  process.on('SIGTERM', () => {
    process.stdout.write('handled\n');
    setTimeout(() => process.exit(0), 10);
  });
}
process.stdout.write(`${JSON.stringify({ pid: process.pid, paths: ring.paths })}\n`);
if (mode === 'hang' || mode === 'own-handler' || mode === 'own-once-handler') setInterval(() => {}, 1000);
else if (mode === 'exit') process.exit(0);
else if (mode === 'throw') throw new Error('the child fails on purpose');
