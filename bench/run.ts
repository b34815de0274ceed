/**
 * The benchmark entry point: `npm run bench -- <suite> [--json] [--quick]`.
 * A suite is a module `bench/<suite>.ts` exporting `run(options)` that resolves to its metrics.
 * With --json the last line printed is `{"suite": ..., "metrics": {...}}`.
 */
import { parseArgs } from 'node:util';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface BenchOptions {
  /** Smaller sizes, for a smoke run. */
  quick: boolean;
  /** Human-readable progress goes to stderr when true (stdout carries only the JSON line). */
  json: boolean;
  log: (line: string) => void;
}
export type BenchSuite = { run(options: BenchOptions): Promise<Record<string, number>> };

const here = fileURLToPath(new URL('.', import.meta.url));
const suites = readdirSync(here)
  .filter((f) => f.endsWith('.ts') && f !== 'run.ts' && !f.endsWith('.test.ts') && !f.startsWith('_'))
  .map((f) => f.slice(0, -3))
  .sort();

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { json: { type: 'boolean', default: false }, quick: { type: 'boolean', default: false } },
});
const [suite] = positionals;
if (suite === undefined || !suites.includes(suite) || positionals.length > 1) {
  console.error(
    `usage: npm run bench -- <suite> [--json] [--quick]\n` +
      (suite === undefined ? '' : `unknown suite ${JSON.stringify(positionals.join(' '))}; `) +
      `suites: ${suites.join(', ')}`,
  );
  process.exit(2);
}
const mod = (await import(`./${suite}.ts`)) as BenchSuite;
const log = (line: string): void => {
  (values.json ? process.stderr : process.stdout).write(`${line}\n`);
};
const metrics = await mod.run({ quick: values.quick, json: values.json, log });
if (values.json) {
  console.log(JSON.stringify({ suite, metrics }));
} else {
  for (const [k, v] of Object.entries(metrics)) console.log(`${k.padEnd(32)} ${v}`);
}
