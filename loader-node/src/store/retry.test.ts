/**
 * The retry policy: how SDK and socket errors are classified, and (property) that the jittered
 * backoff stays within its exponential ceiling.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { backoffDelay, classifyS3Error, describeError, httpStatusOf, TransientError } from './retry.ts';

// The shape @aws-sdk/client-s3 gives its service errors.
function sdkError(name: string, status: number, message = ''): Error {
  return Object.assign(new Error(message), { name, $fault: status >= 500 ? 'server' : 'client', $metadata: { httpStatusCode: status } });
}

function socketError(code: string, name = 'Error'): Error {
  return Object.assign(new Error(`socket ${code}`), { code, name });
}

test('404 is not-found (a missing bucket is fatal), 416 is its own case, 403 and other 4xx are fatal', () => {
  assert.equal(classifyS3Error(sdkError('NoSuchKey', 404)).type, 'not-found');
  assert.equal(classifyS3Error(sdkError('NotFound', 404)).type, 'not-found');
  assert.equal(classifyS3Error(sdkError('NoSuchBucket', 404)).type, 'fatal');
  assert.equal(classifyS3Error(sdkError('InvalidRange', 416)).type, 'range-not-satisfiable');
  for (const [name, status] of [['AccessDenied', 403], ['InvalidAccessKeyId', 403], ['PreconditionFailed', 412], ['InvalidArgument', 400]] as const) {
    assert.equal(classifyS3Error(sdkError(name, status)).type, 'fatal', name);
  }
});

test('5xx, 429, 408, throttling names, socket failures and timeouts are retried; unknown errors are not', () => {
  for (const [name, status] of [['SlowDown', 503], ['InternalError', 500], ['BadGateway', 502], ['ServiceUnavailable', 503], ['TooManyRequests', 429], ['RequestTimeout', 408], ['SlowDown', 400], ['RequestTimeout', 400]] as const) {
    assert.equal(classifyS3Error(sdkError(name, status)).type, 'retry', `${name} ${status}`);
  }
  for (const code of ['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ERR_STREAM_PREMATURE_CLOSE']) {
    assert.equal(classifyS3Error(socketError(code)).type, 'retry', code);
  }
  assert.equal(classifyS3Error(Object.assign(new Error('the request socket timed out'), { name: 'TimeoutError' })).type, 'retry');
  assert.equal(classifyS3Error(new TransientError('the body ended early')).type, 'retry');
  assert.equal(classifyS3Error(new TypeError('a bug')).type, 'fatal');
  assert.equal(classifyS3Error('a string').type, 'fatal');
  assert.equal(classifyS3Error(socketError('EACCES')).type, 'fatal');
});

test('describeError names the error, status and code', () => {
  assert.equal(describeError(sdkError('SlowDown', 503, 'Please reduce your request rate.')), 'SlowDown, HTTP 503: Please reduce your request rate.');
  assert.equal(describeError(socketError('ECONNRESET')), 'Error, ECONNRESET: socket ECONNRESET');
  assert.equal(describeError(sdkError('NotFound', 404, 'UnknownError')), 'NotFound, HTTP 404');
  assert.equal(httpStatusOf({ $response: { statusCode: 502 } }), 502);
  assert.equal(httpStatusOf(null), undefined);
});

test('property: backoff for attempt n lies in [0, min(max, base · 2^(n−1))] and reaches its ceiling', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 60 }), fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 0, max: 100_000 }), (attempt, baseMs, extra) => {
      const backoff = { baseMs, maxMs: baseMs + extra };
      const ceiling = Math.min(backoff.maxMs, baseMs * 2 ** (attempt - 1));
      const delay = backoffDelay(attempt, backoff);
      assert.ok(Number.isInteger(delay) && delay >= 0 && delay <= ceiling, `${delay} for ${JSON.stringify({ attempt, backoff })}`);
      // The extremes of the random draw map to 0 and to the ceiling.
      assert.equal(backoffDelay(attempt, backoff, () => 0), 0);
      assert.equal(backoffDelay(attempt, backoff, (n) => n - 1), Math.floor(ceiling));
    }),
  );
});
