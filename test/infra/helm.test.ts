/**
 * Smoke tests of the real helm and kubectl: helm reports its pinned version and the Kubernetes
 * version it was stamped with, lints the tiny chart, renders it with a value, and refuses a
 * broken chart; kubectl reports its pinned client version.
 */
import assert from 'node:assert/strict';
import { cpSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { pinnedVersion } from './binaries.ts';
import { TINY_CHART, helm, helmKubeVersion, helmLint, helmTemplate, kubectl } from './helm.ts';
import { makeTempDir, removeTempDir } from './supervisor.ts';

test('helm reports the pinned version', () => {
  const result = helm(['version', '--template', '{{.Version}}']);
  assert.equal(result.status, 0, result.stderr);
  assert.equal(result.stdout.trim(), `v${pinnedVersion('helm')}`);
});

test('helm lint and helm template render the tiny chart with a value', () => {
  const report = helmLint(TINY_CHART);
  assert.match(report, /1 chart\(s\) linted, 0 chart\(s\) failed/);

  const yaml = helmTemplate(TINY_CHART, { releaseName: 'smoke', values: { greeting: 'value-from-the-test', port: 9123 } });
  const docs = yaml.split(/^---$/m).filter((doc) => doc.trim() !== '');
  const kinds = docs.map((doc) => /^kind: (\S+)$/m.exec(doc)?.[1]).sort();
  assert.deepEqual(kinds, ['Deployment', 'Service']);
  assert.match(yaml, /value: "value-from-the-test"/);
  assert.match(yaml, /targetPort: 9123/);
  assert.match(yaml, /name: smoke-tiny/);
  assert.doesNotMatch(yaml, /hello-from-values/); // the override replaced the default
  // The ldflags told helm which Kubernetes it renders for (a plain go install says v1.20.0).
  assert.match(yaml, new RegExp(`shardline.dev/kube-version: "v${helmKubeVersion().replace('.', '\\.')}\\.0"`));
});

test('helm lint refuses a chart with a broken template', (t) => {
  const dir = makeTempDir('helm-broken');
  t.after(() => removeTempDir(dir));
  const chart = path.join(dir, 'tiny-chart');
  cpSync(TINY_CHART, chart, { recursive: true });
  writeFileSync(path.join(chart, 'templates', 'broken.yaml'), 'kind: ConfigMap\nmetadata:\n  name: {{ .Values.nope.missing }}\n');
  assert.throws(() => helmLint(chart), /helm lint --strict .* failed \(exit 1\)[\s\S]*broken\.yaml/);
  assert.throws(() => helmTemplate(chart), /nil pointer evaluating interface \{\}\.missing/);
});

test('kubectl reports the pinned client version', () => {
  const result = kubectl(['version', '--client', '--output=json']);
  assert.equal(result.status, 0, result.stderr);
  const info = JSON.parse(result.stdout) as { clientVersion: { gitVersion: string } };
  assert.equal(info.clientVersion.gitVersion, `v${pinnedVersion('kubectl')}`);
});

test('helm and kubectl reject bad arguments', () => {
  assert.throws(() => helmTemplate(''), /chartDir: must be a non-empty path, got ""/);
  assert.throws(() => helmTemplate(TINY_CHART, { values: [] as unknown as Record<string, unknown> }), /values: must be an object, got \[\]/);
  assert.throws(() => helm([1] as unknown as string[]), /args: must be an array of strings, got \[1\]/);
});
