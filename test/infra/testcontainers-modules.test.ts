/**
 * The same smoke checks through the testcontainers modules (@testcontainers/nats, /minio, /k3s),
 * for machines whose Docker engine can pull images from a registry. These machines cannot (no
 * registry is reachable, so the podman engine of containers.ts only has locally built images):
 * the suite runs only when SHARDLINE_TEST_PULL_IMAGES=1 says the engine at DOCKER_HOST can pull.
 * Everywhere else the same servers come from test/infra's local processes, which CI always runs.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import * as k8s from '@kubernetes/client-node';
import { K3sContainer } from '@testcontainers/k3s';
import { MinioContainer } from '@testcontainers/minio';
import { NatsContainer } from '@testcontainers/nats';
import { connect } from 'nats';

// Images pinned to the versions the local servers use (scripts/setup-servers.sh).
const IMAGES = {
  nats: 'nats:2.10.27',
  minio: 'minio/minio:RELEASE.2025-09-07T16-13-09Z',
  k3s: 'rancher/k3s:v1.35.4-k3s1',
} as const;

const enabled = process.env.SHARDLINE_TEST_PULL_IMAGES === '1';
const skip = enabled ? false : 'SHARDLINE_TEST_PULL_IMAGES is not 1: no engine that can pull images (see docs/testing.md)';

describe('testcontainers modules (engines that can pull images)', { skip }, () => {
  test('@testcontainers/nats: JetStream KV put and get', async () => {
    const container = await new NatsContainer(IMAGES.nats).withJetStream().start();
    try {
      const nc = await connect(container.getConnectionOptions());
      try {
        const kv = await nc.jetstream().views.kv('smoke');
        await kv.put('k', 'v');
        assert.equal((await kv.get('k'))?.string(), 'v');
      } finally {
        await nc.close();
      }
    } finally {
      await container.stop();
    }
  });

  test('@testcontainers/minio: put and get an object', async () => {
    const container = await new MinioContainer(IMAGES.minio).start();
    try {
      const client = new S3Client({
        endpoint: container.getConnectionUrl(),
        region: 'us-east-1',
        forcePathStyle: true,
        credentials: { accessKeyId: container.getUsername(), secretAccessKey: container.getPassword() },
      });
      await client.send(new CreateBucketCommand({ Bucket: 'smoke' }));
      await client.send(new PutObjectCommand({ Bucket: 'smoke', Key: 'a', Body: 'hello' }));
      const got = await client.send(new GetObjectCommand({ Bucket: 'smoke', Key: 'a' }));
      assert.equal(await got.Body?.transformToString(), 'hello');
      client.destroy();
    } finally {
      await container.stop();
    }
  });

  test('@testcontainers/k3s: the API server lists its node', async () => {
    const container = await new K3sContainer(IMAGES.k3s).start();
    try {
      const config = new k8s.KubeConfig();
      config.loadFromString(container.getKubeConfig());
      const nodes = await config.makeApiClient(k8s.CoreV1Api).listNode();
      assert.equal(nodes.items.length, 1);
    } finally {
      await container.stop();
    }
  });
});
