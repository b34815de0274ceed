/**
 * What the dataset commands print: progress bars on stderr (only when enabled: `--no-progress` and
 * a stderr that is not a terminal turn them off), one JSON object per `--json` result on stdout,
 * and byte counts people can read.
 */
import cliProgress from 'cli-progress';

/** A progress bar, or nothing when bars are off. */
export interface ProgressBar {
  start(total: number, payload?: Record<string, unknown>): void;
  update(value: number, payload?: Record<string, unknown>): void;
  stop(): void;
}

const NO_BAR: ProgressBar = { start() {}, update() {}, stop() {} };

/**
 * A bar on stderr with cli-progress's format tokens (`{bar}`, `{percentage}`, `{value}`,
 * `{total}`, `{eta_formatted}`) and any payload token, or a no-op when `enabled` is false.
 * @example
 * const bar = progressBar(config.progress, 'verify |{bar}| {value}/{total} samples');
 * bar.start(1000); bar.update(500); bar.stop();
 */
export function progressBar(enabled: boolean, format: string): ProgressBar {
  if (!enabled) return NO_BAR;
  const bar = new cliProgress.SingleBar(
    { format, stream: process.stderr, hideCursor: true, clearOnComplete: false, fps: 10 },
    cliProgress.Presets.shades_classic,
  );
  return {
    start: (total, payload) => bar.start(total, 0, payload),
    update: (value, payload) => bar.update(value, payload),
    stop: () => bar.stop(),
  };
}

/** Writes one JSON object as one line on stdout. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/**
 * Bytes in binary units, e.g. `1.5 MiB`; exact below 1 KiB.
 * @example formatBytes(1536); // '1.5 KiB'
 */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(value < 10 ? 2 : 1)} ${UNITS[unit]}`;
}
