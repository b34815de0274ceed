#!/usr/bin/env node
/**
 * `shardline`: the command line that fronts every component. For now it has `demo`, the main
 * job on the embedded default (what `npm start` runs): a complete local job with no cluster.
 */
import { Command, CommanderError } from 'commander';
import { ConfigError, parseDemoConfig } from './config.ts';
import { runDemo } from './demo/run-demo.ts';
import { createLogger } from './log.ts';

export function buildProgram(): Command {
  const program = new Command('shardline')
    .description('Distributed data loading for ML training: exactly once per epoch, deterministic from a seed.')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

  program
    .command('demo', { isDefault: true })
    .description(
      'Run a complete local job on a generated dataset: a multi-worker DataLoader over every epoch ' +
        '(with an exactly-once check) and the load-balanced epoch plan of simulated ranks.',
    )
    .option('--samples <n>', 'samples in the generated dataset (default 20000)')
    .option('--batch-size <n>', 'samples per batch (default 64)')
    .option('--workers <n>', 'DataLoader worker threads, 0 = in-process (default 2)')
    .option('--epochs <n>', 'epochs to run (default 2)')
    .option('--seed <n>', 'seed of every random choice (default 0)')
    .option('--ranks <n>', 'simulated data-parallel ranks for the epoch plan (default 4)')
    .option('--decode-rounds <n>', 'CPU work per sample, like image decoding (default 2)')
    .option('--no-shuffle', 'keep dataset order')
    .option('--no-progress', 'no progress bar')
    .option('--json', 'print the summary as one JSON object on stdout')
    .option('--log-level <level>', 'trace, debug, info, warn, error or silent (env SHARDLINE_LOG_LEVEL)')
    .action(async (flags: Record<string, unknown>) => {
      const config = parseDemoConfig(flags, process.env);
      const log = createLogger('demo', config.logLevel);
      const summary = await runDemo(config, log);
      if (!summary.ok) process.exitCode = 1;
    });

  return program;
}

async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander has printed its message (or the help) already.
      process.exitCode = err.exitCode;
      return;
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`shardline: ${err.message}\n`);
      process.exitCode = 2;
      return;
    }
    const e = err as Error & { code?: string };
    process.stderr.write(`shardline: ${e.code ? `[${e.code}] ` : ''}${e.stack ?? String(err)}\n`);
    process.exitCode = 1;
  }
}

if (import.meta.main) await main(process.argv);
