/**
 * Reading the Prometheus text format in tests: the value of one series.
 */
import assert from 'node:assert/strict';

/**
 * The value of the first sample of metric `name` whose labels include every one of `labels`
 * (each written `key="value"`; none: the metric's first sample); fails the test when there is none.
 * @example
 * metricValue(text, 'shardline_batch_stage_seconds_count', 'stage="decode"');
 */
export function metricValue(text: string, name: string, ...labels: string[]): number {
  const line = text.split('\n').find((l) => {
    if (l.startsWith(`${name} `)) return labels.length === 0;
    // No labels asked: the first sample of the metric, whatever its labels.
    if (!l.startsWith(`${name}{`)) return false;
    const set = l.slice(name.length + 1, l.indexOf('}'));
    return labels.every((label) => set.split(',').includes(label));
  });
  assert.ok(line !== undefined, `metric ${name}${labels.length > 0 ? `{${labels.join(',')}}` : ''} is exposed in:\n${text}`);
  return Number(line.slice(line.lastIndexOf(' ') + 1));
}
