/**
 * The CLI's configuration: flags and environment parsed once, at start, with a schema, into a
 * typed Config. Nothing else in the CLI reads process.env. Errors name the flag and the value.
 */
import { z } from 'zod';
import { LogLevel } from './log.ts';

export class ConfigError extends Error {
  readonly code = 'ERR_CONFIG';
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

const int = (flag: string, min: number, max: number) =>
  z.coerce
    .number({ error: `${flag} must be a number` })
    .refine((v) => Number.isInteger(v), { error: `${flag} must be an integer` })
    .refine((v) => v >= min && v <= max, { error: `${flag} must be in [${min}, ${max}]` });

export const DemoConfigSchema = z.object({
  samples: int('--samples', 1, 10_000_000),
  batchSize: int('--batch-size', 1, 65_536),
  workers: int('--workers', 0, 64),
  epochs: int('--epochs', 1, 1_000),
  seed: int('--seed', 0, Number.MAX_SAFE_INTEGER),
  ranks: int('--ranks', 1, 4096),
  decodeRounds: int('--decode-rounds', 0, 1_000),
  shuffle: z.boolean(),
  progress: z.boolean(),
  json: z.boolean(),
  logLevel: z.enum(Object.values(LogLevel) as [LogLevel, ...LogLevel[]], {
    error: `SHARDLINE_LOG_LEVEL / --log-level must be one of ${Object.values(LogLevel).join(', ')}`,
  }),
});
export type DemoConfig = z.infer<typeof DemoConfigSchema>;

/** Defaults of the demo: a complete local job that runs in seconds on a 2-core machine. */
export function defaults(): DemoConfig {
  return {
    samples: 20_000,
    batchSize: 64,
    workers: 2,
    epochs: 2,
    seed: 0,
    ranks: 4,
    decodeRounds: 2,
    shuffle: true,
    progress: true,
    json: false,
    logLevel: 'info',
  };
}

/** Parses raw flag values (strings from the command line) and env over the defaults. */
export function parseDemoConfig(flags: Record<string, unknown>, env: NodeJS.ProcessEnv): DemoConfig {
  const raw = { ...defaults(), logLevel: env.SHARDLINE_LOG_LEVEL ?? defaults().logLevel, ...dropUndefined(flags) };
  const result = DemoConfigSchema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const key = String(issue.path[0] ?? '');
    const value = (raw as Record<string, unknown>)[key];
    throw new ConfigError(`${issue.message}, got ${JSON.stringify(value)}`);
  }
  return result.data;
}

function dropUndefined(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}
