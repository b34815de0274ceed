/**
 * A real Kubernetes control plane for tests, the envtest way: etcd and kube-apiserver (built from
 * Go modules by scripts/setup-servers.sh) on loopback with generated certificates and RBAC, plus —
 * unless `controllers: false` — kube-controller-manager, kube-scheduler and kwok, so a Deployment
 * creates Pods that are scheduled onto fake nodes and report Running. No kubelet, no containers.
 * With SHARDLINE_TEST_KUBECONFIG set, tests use that cluster instead.
 */
import { request } from 'node:https';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { pinnedVersion, serverBinary } from './binaries.ts';
import { kubectl as runKubectl, type ToolOptions, type ToolResult } from './helm.ts';
import { createCertificateAuthority, createSigningKey, type KeyPair } from './pki.ts';
import { freePort, httpGet, makeTempDir, removeTempDir, spawnServer, type ManagedProcess } from './supervisor.ts';

/** Options of {@link startKubernetes}. */
export interface KubernetesOptions {
  /**
   * Also run kube-controller-manager, kube-scheduler and kwok (default true). Without them the
   * API server stores objects but nothing acts on them (no Pods from a Deployment, no default
   * ServiceAccount in new namespaces); starting is a few seconds faster.
   */
  controllers?: boolean;
  /** Use SHARDLINE_TEST_KUBECONFIG when it is set (default true). */
  allowExternal?: boolean;
  /** How long to wait for each component (default 90 s: the API server bootstraps RBAC on a 2-core machine). */
  readyTimeoutMs?: number;
}

/** Options of {@link KubernetesCluster.serviceAccountKubeconfig}. */
export interface ServiceAccountOptions {
  /** Token lifetime (default 3600 s; the API server's minimum is 600). */
  expirationSeconds?: number;
  /** Create the ServiceAccount when it does not exist (default true). */
  create?: boolean;
}

/** A control plane started (or, when `external`, found) for a test. */
export interface KubernetesCluster {
  /** The API server's URL, e.g. `https://127.0.0.1:41234`. */
  readonly server: string;
  /** Path of a kubeconfig for a cluster administrator (group system:masters). */
  readonly kubeconfig: string;
  /** The API server's version, e.g. `v1.35.4`. */
  readonly version: string;
  /** True when this is the cluster named by SHARDLINE_TEST_KUBECONFIG (not started or stopped here). */
  readonly external: boolean;
  /** Whether controllers, the scheduler and kwok run (Deployments get Pods that turn Running). */
  readonly controllers: boolean;
  /** The cluster's temp folder (certificates, kubeconfigs, etcd data, one log per component); empty when external. */
  readonly dir: string;
  /** Each component's process id and log file, by name (`etcd`, `kube-apiserver`, …); empty when external. */
  readonly components: Readonly<Record<string, { readonly pid: number; readonly logFile: string }>>;
  /** A new client configuration for the administrator. */
  kubeConfig(): k8s.KubeConfig;
  /** Runs the pinned kubectl as the administrator (or with `kubeconfig`: as whoever that file names). */
  kubectl(args: readonly string[], options?: ToolOptions & { kubeconfig?: string }): ToolResult;
  /**
   * Mints a token for ServiceAccount `namespace/name` (TokenRequest API) and writes a kubeconfig
   * that authenticates as it; resolves to the file's path. The account then has exactly the
   * permissions its Roles and ClusterRoles bind to it — run a component with it to test its RBAC.
   */
  serviceAccountKubeconfig(namespace: string, name: string, options?: ServiceAccountOptions): Promise<string>;
  /**
   * Creates a fake Node that kwok keeps Ready (requires `controllers`); resolves to its name once
   * it reports Ready. Pods scheduled onto it report Running without running anything.
   */
  addNode(name?: string): Promise<string>;
  /** Stops every component and removes the folder (kept with SHARDLINE_TEST_KEEP=1). Idempotent. */
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** The environment variable that names an external cluster's kubeconfig. */
export const KUBECONFIG_ENV = 'SHARDLINE_TEST_KUBECONFIG';
/** The annotation that marks the Nodes kwok manages (kwok's own convention). */
export const KWOK_NODE_ANNOTATION = 'kwok.x-k8s.io/node';

const SERVICE_CIDR = '10.96.0.0/16';
const SERVICE_ACCOUNT_ISSUER = 'https://kubernetes.default.svc.cluster.local';
const KUBE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function checkName(what: string, value: unknown): asserts value is string {
  if (typeof value !== 'string' || value.length > 253 || !KUBE_NAME.test(value)) {
    throw new TypeError(`${what}: must be a Kubernetes object name (lowercase a-z, 0-9, '-', '.'), got ${JSON.stringify(value)}`);
  }
}

type Credentials = { clientCert: KeyPair } | { token: string };

/** A kubeconfig as JSON (which is YAML), with the cluster's CA and the user's credentials inlined. */
function kubeconfigText(server: string, ca: string, user: string, credentials: Credentials, namespace?: string): string {
  const b64 = (text: string): string => Buffer.from(text).toString('base64');
  const userEntry =
    'token' in credentials
      ? { token: credentials.token }
      : { 'client-certificate-data': b64(credentials.clientCert.cert), 'client-key-data': b64(credentials.clientCert.key) };
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'shardline-test', cluster: { server, 'certificate-authority-data': b64(ca) } }],
    users: [{ name: user, user: userEntry }],
    contexts: [{ name: user, context: { cluster: 'shardline-test', user, ...(namespace ? { namespace } : {}) } }],
    'current-context': user,
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}

/** GET over HTTPS with the cluster's CA and a client certificate; resolves to the status and body. */
function httpsGet(url: string, tls: { ca?: string; cert?: string; key?: string; insecure?: boolean }): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { ca: tls.ca, cert: tls.cert, key: tls.key, rejectUnauthorized: tls.insecure !== true, timeout: 3000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: timed out`)));
    req.on('error', reject);
    req.end();
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls `check` until it resolves to a value other than undefined, or throws after `timeoutMs`
 * with `what` and the last error.
 */
export async function waitUntil<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      const why = last instanceof Error ? `: ${last.message}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await sleep(250);
  }
}

/**
 * Starts etcd and kube-apiserver on loopback (free ports, a fresh folder, generated certificates,
 * RBAC authorization, service-account token signing), and unless `controllers: false` also
 * kube-controller-manager, kube-scheduler and kwok. Resolves once every component is ready.
 * @throws Error naming `bash scripts/setup-servers.sh` when a binary is not installed, or with the
 * failing component's command, log file and last output when it does not become ready.
 * @example
 * const k8s = await startKubernetes();
 * t.after(() => k8s.stop());
 * k8s.kubectl(['apply', '-f', 'crd.yaml']);
 * const sa = await k8s.serviceAccountKubeconfig('default', 'operator');
 */
export async function startKubernetes(options: KubernetesOptions = {}): Promise<KubernetesCluster> {
  const timeoutMs = options.readyTimeoutMs ?? 90_000;
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1) {
    throw new TypeError(`readyTimeoutMs: must be an integer ≥ 1, got ${String(options.readyTimeoutMs)}`);
  }
  const external = process.env[KUBECONFIG_ENV];
  if ((options.allowExternal ?? true) && external !== undefined && external !== '') {
    return externalCluster(external, options.controllers ?? true);
  }
  const controllers = options.controllers ?? true;
  const binaries = {
    etcd: serverBinary('etcd'),
    apiserver: serverBinary('kube-apiserver'),
    ...(controllers
      ? { kcm: serverBinary('kube-controller-manager'), scheduler: serverBinary('kube-scheduler'), kwok: serverBinary('kwok') }
      : {}),
  };
  serverBinary('kubectl');
  const version = `v${pinnedVersion('kube-apiserver')}`;
  const dir = makeTempDir('kubernetes');
  const processes: ManagedProcess[] = [];
  const components: Record<string, { pid: number; logFile: string }> = {};
  const file = (name: string, text: string): string => {
    const target = path.join(dir, 'pki', name);
    writeFileSync(target, text, { mode: 0o600 });
    return target;
  };
  const componentDir = (name: string): string => {
    const d = path.join(dir, name);
    mkdirSync(d, { recursive: true });
    return d;
  };
  const start = async (name: string, command: string, args: string[], ready: () => Promise<boolean>, env?: NodeJS.ProcessEnv): Promise<void> => {
    const proc = await spawnServer({ name, command, args, dir: componentDir(name), ready, readyTimeoutMs: timeoutMs, env });
    processes.push(proc);
    components[name] = { pid: proc.pid, logFile: proc.logFile };
  };
  let stopped = false;
  const stopAll = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    // Clients first, etcd last, so nothing logs storms of connection errors on the way down.
    for (const proc of processes.reverse()) await proc.stop();
    removeTempDir(dir);
  };

  try {
    // --- certificates: one CA for serving and client certificates, a key for service-account tokens
    mkdirSync(path.join(dir, 'pki'), { recursive: true });
    const ca = await createCertificateAuthority('shardline-test-kubernetes-ca');
    const serving = await ca.issue({
      commonName: 'kube-apiserver',
      server: { dnsNames: ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc'], ipAddresses: ['127.0.0.1', '10.96.0.1'] },
    });
    const admin = await ca.issue({ commonName: 'shardline-test-admin', organizations: ['system:masters'] });
    const saKey = await createSigningKey();
    const caFile = file('ca.crt', ca.cert);
    const [etcdPort, etcdPeerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
    const server = `https://127.0.0.1:${apiPort}`;

    // --- etcd: single member, no fsync (test data), loopback only
    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    const peerUrl = `http://127.0.0.1:${etcdPeerPort}`;
    await start(
      'etcd',
      binaries.etcd,
      [
        '--name=default',
        `--data-dir=${path.join(dir, 'etcd', 'data')}`,
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=default=${peerUrl}`,
        '--unsafe-no-fsync',
        '--log-level=warn',
      ],
      async () => {
        const res = await httpGet(`${etcdUrl}/health`);
        return res.ok && ((await res.json()) as { health?: string }).health === 'true';
      },
    );

    // --- kube-apiserver: client certificates and service-account tokens, RBAC
    const tls = { ca: ca.cert, cert: admin.cert, key: admin.key };
    await start(
      'kube-apiserver',
      binaries.apiserver,
      [
        `--etcd-servers=${etcdUrl}`,
        '--bind-address=127.0.0.1',
        '--advertise-address=127.0.0.1',
        `--secure-port=${apiPort}`,
        `--cert-dir=${componentDir('kube-apiserver')}`,
        `--tls-cert-file=${file('apiserver.crt', serving.cert)}`,
        `--tls-private-key-file=${file('apiserver.key', serving.key)}`,
        `--client-ca-file=${caFile}`,
        `--service-cluster-ip-range=${SERVICE_CIDR}`,
        `--service-account-issuer=${SERVICE_ACCOUNT_ISSUER}`,
        `--service-account-key-file=${file('sa.pub', saKey.publicKey)}`,
        `--service-account-signing-key-file=${file('sa.key', saKey.privateKey)}`,
        '--authorization-mode=RBAC',
        '--allow-privileged=true',
        // A loopback address cannot be the kubernetes Service's endpoint; nothing in the cluster dials it.
        '--endpoint-reconciler-type=none',
        '--enable-priority-and-fairness=false',
        '--profiling=false',
      ],
      async () => (await httpsGet(`${server}/readyz`, tls)).status === 200,
    );
    const adminKubeconfig = path.join(dir, 'admin.kubeconfig');
    writeFileSync(adminKubeconfig, kubeconfigText(server, ca.cert, 'shardline-test-admin', { clientCert: admin }), { mode: 0o600 });

    if (controllers) {
      // Each component as the user its bootstrap ClusterRole is bound to, as kubeadm does.
      const componentKubeconfig = async (name: string, user: string): Promise<string> => {
        const pair = await ca.issue({ commonName: user });
        const target = path.join(dir, `${name}.kubeconfig`);
        writeFileSync(target, kubeconfigText(server, ca.cert, user, { clientCert: pair }), { mode: 0o600 });
        return target;
      };
      const healthz = (port: number) => async () => (await httpsGet(`https://127.0.0.1:${port}/healthz`, { insecure: true })).status === 200;
      const secured = (kubeconfig: string, name: string, port: number): string[] => [
        `--kubeconfig=${kubeconfig}`,
        `--authentication-kubeconfig=${kubeconfig}`,
        `--authorization-kubeconfig=${kubeconfig}`,
        '--bind-address=127.0.0.1',
        `--secure-port=${port}`,
        `--cert-dir=${componentDir(name)}`,
        '--leader-elect=false',
      ];
      const kcmPort = await freePort();
      await start(
        'kube-controller-manager',
        binaries.kcm!,
        [
          ...secured(await componentKubeconfig('kube-controller-manager', 'system:kube-controller-manager'), 'kube-controller-manager', kcmPort),
          '--use-service-account-credentials=true',
          `--service-account-private-key-file=${path.join(dir, 'pki', 'sa.key')}`,
          `--root-ca-file=${caFile}`,
          `--service-cluster-ip-range=${SERVICE_CIDR}`,
        ],
        healthz(kcmPort),
      );
      const schedulerPort = await freePort();
      await start(
        'kube-scheduler',
        binaries.scheduler!,
        secured(await componentKubeconfig('kube-scheduler', 'system:kube-scheduler'), 'kube-scheduler', schedulerPort),
        healthz(schedulerPort),
      );
      const kwokPort = await freePort();
      const kwokDir = componentDir('kwok');
      await start(
        'kwok',
        binaries.kwok!,
        [
          `--kubeconfig=${adminKubeconfig}`,
          // The upstream Stages the setup script keeps beside the binary (Nodes Ready with a
          // heartbeat, Pods Running at once).
          `--config=${path.join(path.dirname(path.dirname(binaries.kwok!)), 'stages.yaml')}`,
          `--manage-nodes-with-annotation-selector=${KWOK_NODE_ANNOTATION}=fake`,
          `--server-address=127.0.0.1:${kwokPort}`,
          '--cidr=10.244.0.0/16',
          '--node-ip=10.244.0.1',
        ],
        async () => (await httpGet(`http://127.0.0.1:${kwokPort}/healthz`)).ok,
        { ...process.env, HOME: kwokDir },
      );
    }

    return running({ server, version, dir, adminKubeconfig, caCert: ca.cert, controllers, components, stop: stopAll });
  } catch (error) {
    await stopAll();
    throw error;
  }
}

interface Running {
  server: string;
  version: string;
  dir: string;
  adminKubeconfig: string;
  caCert: string;
  controllers: boolean;
  components: Record<string, { pid: number; logFile: string }>;
  external?: boolean;
  stop: () => Promise<void>;
}

function running(state: Running): KubernetesCluster {
  const kubeConfig = (): k8s.KubeConfig => {
    const config = new k8s.KubeConfig();
    config.loadFromFile(state.adminKubeconfig);
    return config;
  };
  let nodes = 0;
  let tokenFiles = 0;
  const tokenDir = state.dir === '' ? makeTempDir('kubeconfigs') : state.dir;
  const cluster: KubernetesCluster = {
    server: state.server,
    kubeconfig: state.adminKubeconfig,
    version: state.version,
    external: state.external === true,
    controllers: state.controllers,
    dir: state.dir,
    components: state.components,
    kubeConfig,
    kubectl(args, options = {}) {
      const { kubeconfig = state.adminKubeconfig, ...rest } = options;
      return runKubectl(['--kubeconfig', kubeconfig, ...args], rest);
    },
    async serviceAccountKubeconfig(namespace, name, options = {}) {
      checkName('namespace', namespace);
      checkName('name', name);
      const expirationSeconds = options.expirationSeconds ?? 3600;
      if (!Number.isInteger(expirationSeconds) || expirationSeconds < 600) {
        throw new TypeError(`expirationSeconds: must be an integer ≥ 600 (the API server's minimum), got ${String(expirationSeconds)}`);
      }
      const core = kubeConfig().makeApiClient(k8s.CoreV1Api);
      if (options.create ?? true) {
        try {
          await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } });
        } catch (error) {
          if ((error as { code?: number }).code !== 409) throw error; // 409: it exists already
        }
      }
      const request = await core.createNamespacedServiceAccountToken({
        namespace,
        name,
        body: { spec: { audiences: [], expirationSeconds } },
      });
      const token = request.status?.token;
      if (token === undefined || token === '') throw new Error(`TokenRequest for ${namespace}/${name} returned no token`);
      tokenFiles += 1;
      const target = path.join(tokenDir, `sa-${namespace}-${name}-${tokenFiles}.kubeconfig`);
      const user = `system:serviceaccount:${namespace}:${name}`;
      writeFileSync(target, kubeconfigText(state.server, state.caCert, user, { token }, namespace), { mode: 0o600 });
      return target;
    },
    async addNode(name) {
      if (!state.controllers) throw new Error('addNode: this cluster was started with controllers: false (no kwok)');
      nodes += 1;
      const nodeName = name ?? `kwok-node-${nodes}`;
      checkName('name', nodeName);
      const core = kubeConfig().makeApiClient(k8s.CoreV1Api);
      await core.createNode({
        body: {
          metadata: {
            name: nodeName,
            annotations: { [KWOK_NODE_ANNOTATION]: 'fake', 'node.alpha.kubernetes.io/ttl': '0' },
            labels: { 'kubernetes.io/hostname': nodeName, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64', type: 'kwok' },
          },
        },
      });
      await waitUntil(`node ${nodeName} to report Ready`, async () => {
        const node = await core.readNode({ name: nodeName });
        const ready = node.status?.conditions?.find((c) => c.type === 'Ready');
        return ready?.status === 'True' ? true : undefined;
      });
      return nodeName;
    },
    stop: state.stop,
    [Symbol.asyncDispose]: state.stop,
  };
  return cluster;
}

// A cluster named by SHARDLINE_TEST_KUBECONFIG: used as it is, never stopped here.
async function externalCluster(kubeconfigPath: string, controllers: boolean): Promise<KubernetesCluster> {
  const config = new k8s.KubeConfig();
  config.loadFromFile(kubeconfigPath);
  const clusterEntry = config.getCurrentCluster();
  if (clusterEntry === null) throw new Error(`${KUBECONFIG_ENV}=${kubeconfigPath}: the kubeconfig has no current cluster`);
  const caCert =
    clusterEntry.caData !== undefined
      ? Buffer.from(clusterEntry.caData, 'base64').toString('utf8')
      : clusterEntry.caFile !== undefined
        ? readFileSync(clusterEntry.caFile, 'utf8')
        : '';
  const info = await config.makeApiClient(k8s.VersionApi).getCode();
  return running({
    server: clusterEntry.server,
    version: info.gitVersion,
    dir: '',
    adminKubeconfig: kubeconfigPath,
    caCert,
    controllers,
    components: {},
    external: true,
    stop: async () => {},
  });
}
