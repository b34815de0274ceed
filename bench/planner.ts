/**
 * Benchmark `planner`: how fast the epoch planner produces a shuffled, load-balanced epoch
 * (against a plain Fisher–Yates shuffle of the same size, in the same run), and how little
 * memory it needs to resume deep inside a 10^10-sample plan.
 *
 * Metrics: indices_per_sec, baseline_indices_per_sec, ratio_vs_baseline, resume_peak_rss_bytes.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { stripTypeScriptTypes } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { BenchOptions } from './run.ts';
import { EpochPlan } from '../core/src/plan/epoch-plan.ts';
import { ShardTable } from '../core/src/plan/shards.ts';
import { Generator } from '../core/src/random.ts';

const SHARD_SIZE = 100_000;
const WORLD = 1024;

/**
 * Skewed synthetic costs, like tokens per document: log-normal (median 600, σ = 1), clipped to
 * [8, 8192], seeded so every run balances the same data.
 */
function syntheticCosts(n: number, seed: number): Float32Array {
  const g = new Generator(seed);
  const costs = new Float32Array(n);
  for (let i = 0; i < n; i++) costs[i] = Math.min(8192, Math.max(8, Math.round(600 * Math.exp(g.normal()))));
  return costs;
}

/**
 * The whole epoch, every rank, window by window (each balancing window is computed once and read
 * by all ranks), or only its first `limit` windows.
 */
function generateEpoch(plan: EpochPlan, limit = Infinity): { count: number; checksum: number } {
  const R = plan.balanceWindow;
  const buffer = new Float64Array(R);
  let count = 0;
  let checksum = 0;
  for (let start = 0, w = 0; start < plan.perRank && w < limit; start += R, w++) {
    for (let rank = 0; rank < plan.worldSize; rank++) {
      const n = plan.fill(rank, start, buffer, 0, R);
      for (let i = 0; i < n; i++) checksum += buffer[i]!;
      count += n;
    }
  }
  return { count, checksum };
}

/** Seconds of wall time and of this process's CPU time spent in `work`. */
function timed<T>(work: () => T): { result: T; seconds: number; cpuSeconds: number } {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const result = work();
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { result, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
}

function fisherYates(n: number, seed: number): number {
  const array = new Uint32Array(n);
  for (let i = 0; i < n; i++) array[i] = i;
  const t0 = performance.now();
  new Generator(seed).shuffle(array);
  const seconds = (performance.now() - t0) / 1000;
  if (array[0] === array[1]) throw new Error('baseline shuffle is broken');
  return n / seconds;
}

/**
 * Writes `entry` and every module it imports (relative imports) to `outDir` as plain JavaScript,
 * so a child can load the planner without Node's TypeScript loader, whose own memory (≈ 35 MiB
 * of RSS for these 17 files) would otherwise dwarf the planner's. Returns the entry's new path.
 */
function stripToJavaScript(entry: string, outDir: string): string {
  const root = dirname(dirname(entry));
  const done = new Set<string>();
  const visit = (file: string): void => {
    if (done.has(file)) return;
    done.add(file);
    const js = stripTypeScriptTypes(readFileSync(file, 'utf8'), { mode: 'strip' }).replace(
      /(from\s+['"])(\.{1,2}\/[^'"]+)\.ts(['"])/g,
      (_, head: string, path: string, tail: string) => {
        visit(resolve(dirname(file), `${path}.ts`));
        return `${head}${path}.js${tail}`;
      },
    );
    const target = join(outDir, relative(root, file)).replace(/\.ts$/, '.js');
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, js);
  };
  visit(entry);
  writeFileSync(join(outDir, 'package.json'), '{"type": "module"}');
  return join(outDir, relative(root, entry)).replace(/\.ts$/, '.js');
}

interface ResumeResult {
  perRank: number;
  start: { epoch: number; position: number };
  end: { epoch: number; position: number };
  ms: number;
  maxRssBytes: number;
  /** The child's own VmHWM (Linux): unaffected by the parent, unlike maxRSS after a fork. */
  hwmBytes: number | null;
}

/**
 * Child process: resume a 10^10-sample plan deep inside and report its own peak RSS.
 *
 * Rank 700 of W = 1024 holds L = ⌈10^10 / 1024⌉ = 9,765,625 positions per epoch, so "position
 * 5·10^9 of rank 700" is read as a position in the rank's stream over epochs: epoch ⌊5·10^9 / L⌋
 * = 512, position 0, and the next 10^7 ids run on into epoch 513. Both epochs are planned from
 * scratch in the child: nothing before the resume point is computed.
 */
function resumeInChild(entry: string, total: number, dir: string): ResumeResult {
  // A script file, its work inside a function: top-level and eval'd code would keep the hot loop
  // in V8's interpreter longer and inflate the child's heap.
  const script = join(dir, `resume-${Date.now()}-${Math.floor(performance.now())}.mjs`);
  writeFileSync(
    script,
    `import { readFileSync } from 'node:fs';
    import { EpochPlan, ShardTable } from ${JSON.stringify(pathToFileURL(entry).href)};
    function resume() {
      const W = ${WORLD}, rank = 700, streamPosition = 5e9, total = ${total};
      const shards = ShardTable.uniform(1e10 / ${SHARD_SIZE}, ${SHARD_SIZE});
      let plan = new EpochPlan({ shardSizes: shards, worldSize: W, seed: 42, shuffle: 'global', partition: 'distributed' });
      const L = plan.perRank;
      plan = plan.withEpoch(Math.floor(streamPosition / L));
      let position = streamPosition - plan.epoch * L;
      const start = { epoch: plan.epoch, position };
      const buffer = new Float64Array(65536);
      let left = total, checksum = 0;
      const t0 = performance.now();
      while (left > 0) {
        const n = plan.fill(rank, position, buffer, 0, Math.min(buffer.length, left));
        if (n === 0) { plan = plan.withEpoch(plan.epoch + 1); position = 0; continue; }
        for (let i = 0; i < n; i++) checksum += buffer[i];
        position += n;
        left -= n;
      }
      return { perRank: L, start, end: { epoch: plan.epoch, position }, checksum, ms: performance.now() - t0 };
    }
    const result = resume();
    const hwm = /VmHWM:\\s*(\\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    console.log(JSON.stringify({ ...result, maxRssBytes: process.resourceUsage().maxRSS * 1024,
      hwmBytes: hwm === null ? null : Number(hwm[1]) * 1024 }));
`,
  );
  const child = spawnSync(process.execPath, [script], { encoding: 'utf8' });
  if (child.status !== 0) throw new Error(`resume child failed (${child.status}): ${child.stderr}`);
  return JSON.parse(child.stdout.trim().split('\n').pop()!) as ResumeResult;
}

const mib = (bytes: number | null): string => (bytes === null ? '?' : (bytes / 2 ** 20).toFixed(1));

function measureResume(log: (line: string) => void, quick: boolean): number {
  const total = quick ? 1e6 : 1e7;
  const source = fileURLToPath(new URL('../core/src/plan/index.ts', import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), 'shardline-planner-'));
  try {
    const js = resumeInChild(stripToJavaScript(source, join(dir, 'js')), total, dir);
    const ts = resumeInChild(source, total, dir);
    log(
      `resume: N = 10^10 in ${1e10 / SHARD_SIZE} shards, W = ${WORLD} (L = ${js.perRank}), rank 700, stream ` +
        `position 5e9 = epoch ${js.start.epoch} position ${js.start.position}; ${total} ids in ` +
        `${js.ms.toFixed(0)} ms, ended at epoch ${js.end.epoch} position ${js.end.position}; ` +
        `peak RSS ${mib(js.maxRssBytes)} MiB as JavaScript (VmHWM ${mib(js.hwmBytes)}), ` +
        `${mib(ts.maxRssBytes)} MiB through Node's TypeScript loader (VmHWM ${mib(ts.hwmBytes)})`,
    );
    return js.maxRssBytes;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run(o: BenchOptions): Promise<Record<string, number>> {
  const n = o.quick ? 1e7 : 1e8;
  // First, while this process is still small: a forked child's maxRSS can carry over from it.
  const rss = measureResume(o.log, o.quick);

  o.log(`planner: N = ${n}, shards of ${SHARD_SIZE}, W = ${WORLD}, global shuffle, load-balanced partition`);

  let t0 = performance.now();
  const costs = syntheticCosts(n, 1);
  o.log(`synthetic costs: ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  t0 = performance.now();
  const plan = new EpochPlan({
    shardSizes: ShardTable.uniform(Math.ceil(n / SHARD_SIZE), SHARD_SIZE, n - (Math.ceil(n / SHARD_SIZE) - 1) * SHARD_SIZE),
    worldSize: WORLD,
    seed: 1,
    epoch: 0,
    shuffle: 'global',
    partition: 'load-balanced',
    costs,
  });
  o.log(`plan setup (validates ${n} costs once): ${(performance.now() - t0).toFixed(0)} ms; R = ${plan.balanceWindow}`);

  // Warm up on a few windows of another epoch so the JIT has compiled the hot loops.
  generateEpoch(plan.withEpoch(1), 20);
  const lb = timed(() => generateEpoch(plan));
  const indicesPerSec = lb.result.count / lb.seconds;
  o.log(
    `load-balanced plan: ${lb.result.count} ids (${plan.perRank * WORLD - n} padding) in ${lb.seconds.toFixed(2)} s = ` +
      `${(indicesPerSec / 1e6).toFixed(1)} M/s (${(lb.result.count / lb.cpuSeconds / 1e6).toFixed(1)} M/s of CPU time); ` +
      `checksum ${lb.result.checksum}`,
  );

  // For context: the same shuffle without costs (distributed partition), rank by rank.
  const plainPlan = new EpochPlan({ shardSizes: plan.shards, worldSize: WORLD, seed: 1, costs: plan.costs });
  const buffer = new Float64Array(65_536);
  const dist = timed(() => {
    let count = 0;
    for (let rank = 0; rank < WORLD; rank++) {
      for (let p = 0; p < plainPlan.perRank; p += buffer.length) count += plainPlan.fill(rank, p, buffer);
    }
    return count;
  });
  o.log(`distributed plan (global shuffle, no costs): ${(dist.result / dist.seconds / 1e6).toFixed(1)} M/s`);

  const report = plan.costReport();
  const plain = plainPlan.costReport();
  o.log(
    `cost balance: load-balanced imbalance ${(report.imbalance * 100).toFixed(4)}% ` +
      `(max deviation ${report.maxDeviation.toFixed(0)}, guaranteed ≤ ${report.bound?.toFixed(0)}, mean ${report.mean.toFixed(0)}); ` +
      `plain distributed ${(plain.imbalance * 100).toFixed(4)}%`,
  );

  // The cache-friendly configuration a loader node runs by default: the same load-balanced plan
  // over a shard-aware shuffle, so the cost lookups of a window stay within a few shards.
  const shardAwarePlan = new EpochPlan({
    shardSizes: plan.shards,
    worldSize: WORLD,
    seed: 1,
    shuffle: 'shard-aware',
    partition: 'load-balanced',
    costs: plan.costs,
  });
  generateEpoch(shardAwarePlan.withEpoch(1), 20);
  const sa = timed(() => generateEpoch(shardAwarePlan));
  const shardAwarePerSec = sa.result.count / sa.seconds;
  o.log(
    `load-balanced plan over a shard-aware shuffle: ${(shardAwarePerSec / 1e6).toFixed(1)} M/s; ` +
      `imbalance ${(shardAwarePlan.costReport().imbalance * 100).toFixed(4)}%`,
  );

  const baseline = fisherYates(n, 1);
  o.log(`baseline Fisher–Yates over Uint32Array(${n}) (Generator.shuffle): ${(baseline / 1e6).toFixed(1)} M/s`);

  return {
    indices_per_sec: Math.round(indicesPerSec),
    baseline_indices_per_sec: Math.round(baseline),
    ratio_vs_baseline: Number((indicesPerSec / baseline).toFixed(3)),
    indices_per_sec_shard_aware: Math.round(shardAwarePerSec),
    distributed_indices_per_sec: Math.round(dist.result / dist.seconds),
    resume_peak_rss_bytes: rss,
  };
}
