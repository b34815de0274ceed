/**
 * Benchmark `s3`: how fast S3Source.download fetches shards from a real S3 (MinIO on loopback,
 * started by test/infra) into files, against the plain way — one GetObjectCommand whose body is
 * streamed to a file with `pipeline` — on the same objects, with the two interleaved repetition by
 * repetition (and the order swapped every repetition) so drift in the machine's load hits both.
 *
 * Both sides use @aws-sdk/client-s3 with response checksum validation off (`WHEN_REQUIRED`): the
 * comparison is of the transport (parallel range GETs, keep-alive pool, temp file and rename),
 * not of CRC32 computation. Objects are fetched one after another, as a cache fetches a shard.
 *
 * Metrics: fetch_vs_getobject_ratio (throughput ours / plain; goal ≥ 0.9), fetch_mb_per_s,
 * getobject_mb_per_s (MB = 10^6 bytes), objects, object_bytes.
 */
import { randomFillSync } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type { BenchOptions } from './run.ts';
import { S3Source } from '../loader-node/src/store/s3-source.ts';
import { startS3, type S3Server } from '../test/infra/s3.ts';

const MiB = 1024 * 1024;

/** Seconds to fetch every key, one after another, with `fetch`; checks each file's size. */
async function timeAll(keys: string[], size: number, dir: string, fetch: (key: string, file: string) => Promise<void>): Promise<number> {
  const t0 = performance.now();
  for (const key of keys) {
    const file = path.join(dir, key);
    await fetch(key, file);
    if ((await stat(file)).size !== size) throw new Error(`${file} has the wrong size`);
  }
  const seconds = (performance.now() - t0) / 1000;
  for (const key of keys) await rm(path.join(dir, key));
  return seconds;
}

export async function run(o: BenchOptions): Promise<Record<string, number>> {
  const count = o.quick ? 4 : 8;
  const size = (o.quick ? 8 : 32) * MiB;
  const repetitions = o.quick ? 2 : 3;
  const s3: S3Server = await startS3();
  const dir = await mkdtemp(path.join(tmpdir(), 'shardline-bench-s3-'));
  const plain = new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const source = new S3Source({
    bucket: await s3.createBucket(),
    region: s3.region,
    endpoint: s3.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  });
  const bucket = source.options.bucket;
  try {
    o.log(`s3: MinIO at ${s3.endpoint}${s3.external ? ' (external)' : ''}; uploading ${count} × ${size / MiB} MiB`);
    const keys = Array.from({ length: count }, (_, i) => `shard-${String(i).padStart(5, '0')}.bin`);
    const body = Buffer.allocUnsafe(size);
    for (const key of keys) {
      randomFillSync(body);
      await plain.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
    }

    const ours = (key: string, file: string): Promise<void> => source.download(key, file, { expectedSize: size }).then(() => undefined);
    const baseline = async (key: string, file: string): Promise<void> => {
      const { Body } = await plain.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      await pipeline(Body as Readable, createWriteStream(file));
    };
    // Warm-up: connections, JIT, MinIO's own caches — for both.
    await timeAll(keys.slice(0, 1), size, dir, ours);
    await timeAll(keys.slice(0, 1), size, dir, baseline);

    let oursSeconds = 0;
    let baselineSeconds = 0;
    for (let r = 0; r < repetitions; r++) {
      const order = r % 2 === 0 ? (['ours', 'baseline'] as const) : (['baseline', 'ours'] as const);
      for (const which of order) {
        const seconds = await timeAll(keys, size, dir, which === 'ours' ? ours : baseline);
        if (which === 'ours') oursSeconds += seconds;
        else baselineSeconds += seconds;
        o.log(`  repetition ${r + 1}: ${which === 'ours' ? 'S3Source.download' : 'GetObjectCommand + pipeline'}: ${((count * size) / seconds / 1e6).toFixed(0)} MB/s`);
      }
    }
    const bytes = count * size * repetitions;
    const oursRate = bytes / oursSeconds / 1e6;
    const baselineRate = bytes / baselineSeconds / 1e6;
    o.log(
      `S3Source.download (part ${source.options.partSize / MiB} MiB, ${source.options.maxConcurrency} in flight): ${oursRate.toFixed(0)} MB/s; ` +
        `plain GetObjectCommand: ${baselineRate.toFixed(0)} MB/s; ratio ${(oursRate / baselineRate).toFixed(2)}`,
    );
    return {
      fetch_vs_getobject_ratio: Number((oursRate / baselineRate).toFixed(3)),
      fetch_mb_per_s: Number(oursRate.toFixed(1)),
      getobject_mb_per_s: Number(baselineRate.toFixed(1)),
      objects: count,
      object_bytes: size,
    };
  } finally {
    await source.close();
    plain.destroy();
    await s3.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
