/**
 * Smoke test of the container engine: testcontainers, pointed at podman's Docker-API socket,
 * starts a container from the local base image that runs a Node HTTP server, reaches its
 * published port, and stops it without leaving a container behind.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { GenericContainer, Wait } from 'testcontainers';
import { startContainerEngine, type ContainerEngine } from './containers.ts';

let engine: ContainerEngine;
before(async () => {
  engine = await startContainerEngine();
});
after(() => engine?.stop());

test('the engine serves the Docker API for testcontainers', async () => {
  assert.equal(process.env.DOCKER_HOST, engine.dockerHost);
  assert.equal(process.env.TESTCONTAINERS_RYUK_DISABLED, 'true');
  const images = engine.podman(['image', 'exists', engine.baseImage]);
  assert.equal(images.status, 0, `${engine.baseImage} is missing: ${images.stderr}`);
});

test('testcontainers runs the base image and reaches its published port', async () => {
  const port = 8080;
  const marker = `shardline-${process.pid}`;
  const container = await new GenericContainer(engine.baseImage)
    .withCommand([
      'node',
      '-e',
      `require('node:http').createServer((q, s) => s.end(process.version + ' ' + process.env.MARKER)).listen(${port})`,
    ])
    .withEnvironment({ MARKER: marker })
    .withExposedPorts(port)
    // An HTTP probe from the host: the default (listening ports) execs into the container, and
    // podman keeps each exec session's conmon alive for minutes afterwards.
    .withWaitStrategy(Wait.forHttp('/', port).forStatusCode(200))
    .withStartupTimeout(30_000)
    .start();
  let id = '';
  try {
    id = container.getId();
    const url = `http://${container.getHost()}:${container.getMappedPort(port)}/`;
    const response = await fetch(url, { signal: AbortSignal.timeout(5000) });
    assert.equal(response.status, 200);
    const body = await response.text();
    assert.match(body, /^v24\.\d+\.\d+ /); // the repo's Node 24, copied into the image
    assert.equal(body.split(' ')[1], marker);
  } finally {
    await container.stop({ timeout: 1_000 });
  }
  const left = engine.podman(['ps', '-a', '--filter', `id=${id}`, '--format', '{{.ID}}']);
  assert.equal(left.status, 0, left.stderr);
  assert.equal(left.stdout.trim(), '', 'the stopped container was removed');
});

test('stop() restores the environment and ends the service', async () => {
  const second = await startContainerEngine({ allowExternal: false });
  assert.equal(process.env.DOCKER_HOST, second.dockerHost);
  await second.stop();
  await second.stop(); // idempotent
  assert.equal(process.env.DOCKER_HOST, engine.dockerHost);
});
