/**
 * Test infrastructure: real servers started as local processes for tests (see docs/testing.md).
 */
export { REPO_ROOT, SETUP_COMMAND, cacheDir, missingServerError, pinnedVersion, serverBinary } from './binaries.ts';
export type { ServerBinary } from './binaries.ts';
export { ManagedProcess, freePort, keepArtifacts, makeTempDir, removeTempDir, spawnServer } from './supervisor.ts';
export type { ExitStatus, SpawnOptions } from './supervisor.ts';
export { connectFor, natsConfig, natsPerFile, startNats } from './nats.ts';
export type { NatsOptions, NatsServer, NatsUser } from './nats.ts';
export { S3_ENV, startS3 } from './s3.ts';
export type { S3Options, S3Server } from './s3.ts';
export { checkPrometheusConfig, prometheusConfig, promtool, startPrometheus } from './prometheus.ts';
export type { PrometheusOptions, PrometheusServer, PromQueryData, PromSample, PromtoolResult } from './prometheus.ts';
export { TINY_CHART, helm, helmKubeVersion, helmLint, helmTemplate, kubectl } from './helm.ts';
export type { ChartOptions, ToolOptions, ToolResult } from './helm.ts';
export { CONTAINERS_SETUP_COMMAND, baseImage, containersConf, startContainerEngine } from './containers.ts';
export type { ContainerEngine, ContainerEngineOptions } from './containers.ts';
export { KUBECONFIG_ENV, KWOK_NODE_ANNOTATION, startKubernetes, waitUntil } from './kubernetes.ts';
export type { KubernetesCluster, KubernetesOptions, ServiceAccountOptions } from './kubernetes.ts';
export { metricValue } from './metrics-text.ts';
export { createCertificateAuthority, createSigningKey } from './pki.ts';
export type { CertificateAuthority, IssueOptions, KeyPair } from './pki.ts';
