/**
 * Structured logging for every Shardline binary: one JSON line per event (pino) on stderr, so
 * stdout stays free for results (`--json` output, summaries). `SHARDLINE_LOG_LEVEL` is read once
 * by the config layer and passed in here.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

export const LogLevel = {
  trace: 'trace',
  debug: 'debug',
  info: 'info',
  warn: 'warn',
  error: 'error',
  silent: 'silent',
} as const;
export type LogLevel = (typeof LogLevel)[keyof typeof LogLevel];

/** A logger writing one JSON object per line to stderr, with `component` on every line. */
export function createLogger(component: string, level: LogLevel = 'info'): Logger {
  return pino(
    {
      level,
      base: { component },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    pino.destination({ fd: 2, sync: true }),
  );
}
