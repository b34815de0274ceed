import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, defaults, parseDemoConfig } from './config.ts';

test('flags override defaults and are coerced from strings', () => {
  const c = parseDemoConfig({ samples: '500', workers: '0', shuffle: false }, {});
  assert.equal(c.samples, 500);
  assert.equal(c.workers, 0);
  assert.equal(c.shuffle, false);
  assert.equal(c.batchSize, defaults().batchSize);
});

test('bad flag values are refused with the flag and the value named', () => {
  assert.throws(() => parseDemoConfig({ samples: '-3' }, {}), (e: Error) => e instanceof ConfigError && /--samples must be in \[1, .*got "-3"/.test(e.message));
  assert.throws(() => parseDemoConfig({ batchSize: 'many' }, {}), /--batch-size must be .*got "many"/);
  assert.throws(() => parseDemoConfig({ workers: '1.5' }, {}), /--workers must be an integer/);
  assert.throws(() => parseDemoConfig({}, { SHARDLINE_LOG_LEVEL: 'loud' }), /SHARDLINE_LOG_LEVEL/);
});
