import { test } from 'node:test';
import assert from 'node:assert/strict';
import { healthShadowState } from '../../components/health-reporter/health-shadow';
import type { HealthMessage } from '../../components/health-reporter/reporter';
import shadowSchema from '../../components/shared/schemas/health-shadow.v1.schema.json';
import { compileValidator } from '../../components/shared/validation';

const T = Date.parse('2026-11-26T12:00:00Z');

function message(reasons: string[]): HealthMessage {
  return {
    schema: 'elevator.health/1',
    device: 'elevator-0001',
    time: new Date(T).toISOString(),
    status: reasons.length ? 'degraded' : 'healthy',
    reasons,
    components: {
      SensorAcquisition: { lastSeenSec: 2, metrics: { sampled: 10 } },
      StreamBuffer: { lastSeenSec: 1, metrics: { store: { backlogRecords: 42, streams: [{ oldestBacklogTime: T - 90_000 }, { oldestBacklogTime: null }] } } },
      MqttPublisher: { lastSeenSec: null, metrics: null },
    },
    system: { loadAvg1m: 0.123456, cpuCount: 2, cpuBusyPercent: 12.5, memFreeBytes: 1000, memTotalBytes: 2000, diskFreeBytes: 5000, clockState: 'unsynced', clockLastStepMs: 4200 },
  };
}

test('the health shadow is flat and typed: only strings, numbers, booleans and nulls, no nested objects', () => {
  const state = healthShadowState(message(['MqttPublisher: no heartbeat']));
  for (const [key, value] of Object.entries(state)) {
    assert.ok(value === null || ['string', 'number', 'boolean'].includes(typeof value), `${key} is ${typeof value}`);
    assert.doesNotMatch(key, /\./, 'fleet indexing field names have no dots');
  }
  assert.equal(state.status, 'degraded');
  assert.equal(state.backlogRecords, 42);
  assert.equal(state.backlogAgeSec, 90);
  assert.equal(state.mqttPublisherLastSeenSec, null);
  assert.equal(state.streamBufferLastSeenSec, 1);
  assert.equal(state.loadAvg1m, 0.12);
});

test('however many reasons there are, the shadow stays far below the 8 KiB document limit', () => {
  const state = healthShadowState(message(Array.from({ length: 500 }, (_, i) => `reason number ${i} `.repeat(20))));
  const document = JSON.stringify({ state: { reported: state } });
  assert.ok(Buffer.byteLength(document) < 2048, `${Buffer.byteLength(document)} bytes`);
  assert.equal(state.reasonCount, 500);
});

test('the shadow document is valid against health-shadow.v1, for every status and with null figures', () => {
  const validate = compileValidator(shadowSchema);
  for (const reasons of [[], ['MqttPublisher: no heartbeat'], Array.from({ length: 40 }, (_, i) => `disk free ${i} bytes is under 104857600`)]) {
    const m = message(reasons);
    const variants: HealthMessage[] = [m, { ...m, status: 'unhealthy', system: { ...m.system, diskFreeBytes: null, clockState: 'unknown' }, components: {} }];
    for (const variant of variants) {
      const checked = validate(healthShadowState(variant));
      assert.ok(checked.ok, checked.ok ? '' : checked.reason);
    }
  }
});

test('a shadow state with a nested object or an unknown field fails the contract, so the test above can fail', () => {
  const validate = compileValidator(shadowSchema);
  const state = healthShadowState(message([]));
  assert.equal(validate({ ...state, nested: { a: 1 } }).ok, false);
  assert.equal(validate({ ...state, status: 'fine' }).ok, false);
});

test('with the most components a device can run and long names, the shadow document stays under 8 KiB', () => {
  const m = message(Array.from({ length: 100 }, () => 'x'.repeat(1000)));
  const components = Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`VeryLongComponentNameNumber${i}ForAnInstaller`, { lastSeenSec: 1, metrics: null }]));
  const document = JSON.stringify({ state: { reported: healthShadowState({ ...m, components }) } });
  assert.ok(Buffer.byteLength(document) < 8192, `${Buffer.byteLength(document)} bytes`);
});
