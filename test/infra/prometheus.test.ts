/**
 * Smoke tests of the real Prometheus: it scrapes a prom-client endpoint and answers a query;
 * promtool checks the generated config (and refuses a broken one).
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { Counter, Registry } from 'prom-client';
import { checkPrometheusConfig, prometheusConfig, promtool, startPrometheus } from './prometheus.ts';
import { makeTempDir, removeTempDir } from './supervisor.ts';

test('Prometheus scrapes a prom-client endpoint and answers a query', async (t) => {
  const registry = new Registry();
  const counter = new Counter({ name: 'shardline_test_total', help: 'Smoke test counter.', labelNames: ['kind'], registers: [registry] });
  counter.inc({ kind: 'smoke' }, 3);
  const http = createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    registry.metrics().then(
      (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body),
      (error: unknown) => res.writeHead(500).end(String(error)),
    );
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => http.close(() => resolve())));
  const target = `127.0.0.1:${(http.address() as AddressInfo).port}`;

  const prom = await startPrometheus({ targets: [target], scrapeInterval: '500ms', allowExternal: false });
  t.after(() => prom.stop());

  const [sample, ...rest] = await prom.waitForSamples('shardline_test_total{kind="smoke"}');
  assert.equal(rest.length, 0);
  assert.equal(sample?.value[1], '3');
  assert.equal(sample?.metric.job, 'shardline-test');
  assert.equal(sample?.metric.instance, target);

  // A later scrape sees the new value.
  counter.inc({ kind: 'smoke' }, 2);
  const later = await prom.waitForSamples('sum(shardline_test_total)', (s) => s[0]?.value[1] === '5');
  assert.equal(later[0]?.value[1], '5');

  const up = await prom.query(`up{instance="${target}"}`);
  assert.equal(up.resultType, 'vector');
  await assert.rejects(prom.query('sum('), /bad_data/);
});

test('promtool check config passes for the generated config and fails for a broken one', async (t) => {
  const dir = makeTempDir('promtool');
  t.after(() => removeTempDir(dir));
  const good = path.join(dir, 'good.yml');
  writeFileSync(good, prometheusConfig({ targets: ['127.0.0.1:9464', 'localhost:9100'], scrapeInterval: '15s' }));
  checkPrometheusConfig(good);
  assert.match(promtool(['--version']).stdout, /promtool, version/);

  const bad = path.join(dir, 'bad.yml');
  writeFileSync(bad, 'global:\n  scrape_interval: soon\n');
  assert.throws(() => checkPrometheusConfig(bad), /promtool check config .* failed/);
});

test('prometheusConfig refuses bad targets and intervals', () => {
  assert.throws(() => prometheusConfig({ targets: ['http://x:1/metrics'] }), /targets\[0\]: must be host:port, got "http:\/\/x:1\/metrics"/);
  assert.throws(() => prometheusConfig({ targets: [], scrapeInterval: '1 second' }), /scrapeInterval: must be a Prometheus duration/);
});
