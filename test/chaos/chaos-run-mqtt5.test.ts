import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '../../components/shared/logger';
import { findMosquitto, MOSQUITTO_MISSING } from '../helpers/mosquitto';
import { assertChaosGuarantees } from './guarantees';
import { ChaosHarness } from './harness';

// The same minute of chaos as chaos-run.test.ts, with MqttPublisher on its own MQTT 5 connection
// (the SDK's Mqtt5Client) to mosquitto through the fault proxy instead of the runtime's bridge.
const mosquitto = findMosquitto();
if (!mosquitto) console.error(`\n*** ${MOSQUITTO_MISSING} ***\n`);

test('a minute of chaos over the MQTT 5 transport: every applicable fault fires, nothing is lost or stored twice, and the epoch loss is exactly what the corruption put at risk', { skip: mosquitto ? false : MOSQUITTO_MISSING, timeout: 420_000 }, async () => {
  const seed = Number(process.env.CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31));
  const report = await new ChaosHarness({ durationMs: 60_000, drainTimeoutMs: 180_000, thingName: 'ci-chaos-mqtt5', seed, transport: 'mqtt5', logger: createLogger('chaos-test-mqtt5') }).run();
  const context = `seed ${seed} (rerun with CHAOS_SEED=${seed}): ${JSON.stringify({ ...report, timeline: undefined })}`;
  assert.equal(report.transport, 'mqtt5');
  // Not applicable is not passed: say it loudly, and make sure it is only what we expect.
  const notApplicable = Object.entries(report.notApplicable);
  for (const [fault, reason] of notApplicable) console.error(`\n*** NOT APPLICABLE with the MQTT 5 transport, not counted as passed: ${fault} (${reason}) ***\n`);
  assert.deepEqual(notApplicable.map(([fault]) => fault), ['spooler-full'], context);
  assertChaosGuarantees(report, context);
});
