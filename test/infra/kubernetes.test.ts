/**
 * Smoke tests of the real control plane (etcd, kube-apiserver, kube-controller-manager,
 * kube-scheduler, kwok): a CRD and custom objects through kubectl and @kubernetes/client-node,
 * schema refusals, RBAC for a ServiceAccount, and a Deployment whose Pod turns Running on a fake
 * node. One cluster serves the whole file (it takes seconds to start on 2 cores).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { pinnedVersion } from './binaries.ts';
import { startKubernetes, waitUntil, type KubernetesCluster } from './kubernetes.ts';

const FIXTURES = path.join(import.meta.dirname, 'fixtures', 'kubernetes');
const GROUP = 'test.shardline.dev';

let cluster: KubernetesCluster;

before(async () => {
  cluster = await startKubernetes();
  const crd = cluster.kubectl(['apply', '-f', path.join(FIXTURES, 'widget-crd.yaml')]);
  assert.equal(crd.status, 0, crd.stderr);
  const established = cluster.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/widgets.test.shardline.dev']);
  assert.equal(established.status, 0, established.stderr);
});

after(async () => {
  await cluster?.stop();
});

function statusCode(error: unknown): number | undefined {
  return (error as { code?: number }).code;
}

test('the API server reports the pinned Kubernetes version to kubectl and client-node', async () => {
  const result = cluster.kubectl(['version', '--output=json']);
  assert.equal(result.status, 0, result.stderr);
  const info = JSON.parse(result.stdout) as { clientVersion: { gitVersion: string }; serverVersion: { gitVersion: string } };
  const pinned = `v${pinnedVersion('kube-apiserver')}`;
  assert.equal(info.serverVersion.gitVersion, pinned);
  assert.equal(info.clientVersion.gitVersion, pinned);
  const code = await cluster.kubeConfig().makeApiClient(k8s.VersionApi).getCode();
  assert.equal(code.gitVersion, pinned);
  assert.equal(cluster.version, pinned);
});

test('a custom object created with kubectl is read back with client-node, and one created with client-node with kubectl', async () => {
  const applied = cluster.kubectl(['apply', '-f', path.join(FIXTURES, 'widget.yaml')]);
  assert.equal(applied.status, 0, applied.stderr);
  const objects = cluster.kubeConfig().makeApiClient(k8s.CustomObjectsApi);
  const read = (await objects.getNamespacedCustomObject({
    group: GROUP,
    version: 'v1',
    namespace: 'default',
    plural: 'widgets',
    name: 'from-kubectl',
  })) as { spec: { replicas: number; dataset: string } };
  assert.deepEqual(read.spec, { replicas: 2, dataset: 's3://bucket/train' });

  await objects.createNamespacedCustomObject({
    group: GROUP,
    version: 'v1',
    namespace: 'default',
    plural: 'widgets',
    body: { apiVersion: `${GROUP}/v1`, kind: 'Widget', metadata: { name: 'from-client-node' }, spec: { replicas: 8, dataset: 's3://b/x' } },
  });
  const got = cluster.kubectl(['get', 'widget', 'from-client-node', '--output=jsonpath={.spec.replicas}']);
  assert.equal(got.status, 0, got.stderr);
  assert.equal(got.stdout, '8');
});

test('an object that violates the CRD schema is refused, naming the offending fields', async () => {
  const refused = cluster.kubectl(['apply', '-f', path.join(FIXTURES, 'widget-invalid.yaml')]);
  assert.notEqual(refused.status, 0, 'kubectl apply of an invalid Widget succeeded');
  assert.match(refused.stderr, /spec\.replicas/);
  assert.match(refused.stderr, /spec\.dataset/);

  const objects = cluster.kubeConfig().makeApiClient(k8s.CustomObjectsApi);
  await assert.rejects(
    objects.createNamespacedCustomObject({
      group: GROUP,
      version: 'v1',
      namespace: 'default',
      plural: 'widgets',
      body: { apiVersion: `${GROUP}/v1`, kind: 'Widget', metadata: { name: 'no-dataset' }, spec: { replicas: 100 } },
    }),
    (error: unknown) => {
      assert.equal(statusCode(error), 422);
      assert.match(String((error as { body?: unknown }).body), /spec\.replicas/);
      assert.match(String((error as { body?: unknown }).body), /spec\.dataset: Required value/);
      return true;
    },
  );
  const missing = cluster.kubectl(['get', 'widget', 'invalid', 'no-dataset', '--ignore-not-found', '--output=name']);
  assert.equal(missing.stdout.trim(), '', 'a refused object was stored');
});

test('a ServiceAccount is denied until a Role grants it access, and then only what the Role names', async () => {
  const core = cluster.kubeConfig().makeApiClient(k8s.CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: 'rbac-test' } } });
  const kubeconfig = await cluster.serviceAccountKubeconfig('rbac-test', 'widget-reader');

  const asReader = new k8s.KubeConfig();
  asReader.loadFromFile(kubeconfig);
  const objects = asReader.makeApiClient(k8s.CustomObjectsApi);
  const list = () => objects.listNamespacedCustomObject({ group: GROUP, version: 'v1', namespace: 'rbac-test', plural: 'widgets' });
  await assert.rejects(list(), (error: unknown) => statusCode(error) === 403);
  const denied = cluster.kubectl(['get', 'widgets', '--namespace=rbac-test'], { kubeconfig });
  assert.notEqual(denied.status, 0);
  assert.match(denied.stderr, /forbidden: User "system:serviceaccount:rbac-test:widget-reader" cannot list resource "widgets"/);

  const rbac = cluster.kubeConfig().makeApiClient(k8s.RbacAuthorizationV1Api);
  await rbac.createNamespacedRole({
    namespace: 'rbac-test',
    body: { metadata: { name: 'widget-reader' }, rules: [{ apiGroups: [GROUP], resources: ['widgets'], verbs: ['get', 'list', 'watch'] }] },
  });
  await rbac.createNamespacedRoleBinding({
    namespace: 'rbac-test',
    body: {
      metadata: { name: 'widget-reader' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'widget-reader' },
      subjects: [{ kind: 'ServiceAccount', name: 'widget-reader', namespace: 'rbac-test' }],
    },
  });
  // The authorizer reads RBAC objects from a watch cache: allow it a moment to see the binding.
  const listed = await waitUntil('the RoleBinding to take effect', async () => (await list()) as { items: unknown[] }, 30_000);
  assert.deepEqual(listed.items, []);
  const canCreate = cluster.kubectl(['auth', 'can-i', 'create', `widgets.${GROUP}`, '--namespace=rbac-test'], { kubeconfig });
  assert.equal(canCreate.stdout.trim(), 'no');
  const otherNamespace = cluster.kubectl(['auth', 'can-i', 'list', `widgets.${GROUP}`, '--namespace=default'], { kubeconfig });
  assert.equal(otherNamespace.stdout.trim(), 'no');
});

test('a Deployment creates a Pod that is scheduled onto a kwok node and reports Running', async () => {
  const node = await cluster.addNode();
  const apps = cluster.kubeConfig().makeApiClient(k8s.AppsV1Api);
  const labels = { app: 'smoke' };
  await apps.createNamespacedDeployment({
    namespace: 'default',
    body: {
      metadata: { name: 'smoke' },
      spec: {
        replicas: 2,
        selector: { matchLabels: labels },
        template: { metadata: { labels }, spec: { containers: [{ name: 'main', image: 'shardline-base:never-pulled' }] } },
      },
    },
  });
  const core = cluster.kubeConfig().makeApiClient(k8s.CoreV1Api);
  const pods = await waitUntil(
    'two Running Pods of Deployment smoke',
    async () => {
      const list = await core.listNamespacedPod({ namespace: 'default', labelSelector: 'app=smoke' });
      const runningPods = list.items.filter((p) => p.status?.phase === 'Running');
      return runningPods.length === 2 ? runningPods : undefined;
    },
    90_000,
  );
  for (const pod of pods) assert.equal(pod.spec?.nodeName, node);
  const deployment = await waitUntil('Deployment smoke to report 2 available replicas', async () => {
    const d = await apps.readNamespacedDeployment({ namespace: 'default', name: 'smoke' });
    return d.status?.availableReplicas === 2 ? d : undefined;
  });
  assert.equal(deployment.status?.readyReplicas, 2);
});

test('stop() ends every component and a second stop() is harmless', async () => {
  const small = await startKubernetes({ controllers: false, allowExternal: false });
  const pids = Object.values(small.components).map((c) => c.pid);
  assert.deepEqual(Object.keys(small.components), ['etcd', 'kube-apiserver']);
  await small.stop();
  await small.stop();
  for (const pid of pids) assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' });
  await assert.rejects(small.addNode(), /controllers: false/);
});
