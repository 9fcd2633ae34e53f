import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '../../components/shared/logger';
import { Pipeline } from '../../scripts/pipeline';
import { findMosquitto, MOSQUITTO_MISSING, startMosquitto } from '../helpers/mosquitto';
import { tempRoot } from '../helpers/runtime-fixture';

const mosquitto = findMosquitto();
if (!mosquitto) console.error(`\n*** ${MOSQUITTO_MISSING} ***\n`);

test('the runtime bridges IoT Core topics to a real mosquitto broker, and nothing is lost', { skip: mosquitto ? false : MOSQUITTO_MISSING, timeout: 120_000 }, async () => {
  const broker = await startMosquitto(mosquitto!);
  try {
    const summary = await new Pipeline({
      root: tempRoot('mqp-'),
      thingName: 'mosquitto-thing-01',
      durationMs: 8_000,
      drainTimeoutMs: 60_000,
      brokerUrl: broker.url,
      resume: false,
      timeScale: 20,
      logger: createLogger('pipeline-mosquitto-test'),
    }).run();
    assert.ok(summary.produced > 50, `records were produced (${summary.produced})`);
    assert.equal(summary.drained, true);
    assert.equal(summary.missing, 0);
    assert.equal(summary.archived, summary.produced);
    assert.ok((summary.streams.find((s) => s.stream === 'run')?.produced ?? 0) > 0, 'runs were derived from the simulated signals');
    assert.equal(summary.quarantinedOnDevice, 0, 'every derived record honoured its data contract on the device');
    assert.equal(summary.invalidAtCloud, 0, 'and at the cloud');
    const health = summary.health['mosquitto-thing-01'];
    assert.ok(health, 'the device\'s final health reached the cloud');
    assert.ok(['healthy', 'degraded', 'unhealthy'].includes(health.status) && Array.isArray(health.reasons), JSON.stringify(health));
  } finally {
    await broker.stop();
  }
});
