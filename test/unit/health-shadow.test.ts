import { test } from 'node:test';
import assert from 'node:assert/strict';
import { healthShadowState } from '../../components/health-reporter/health-shadow';
import type { HealthMessage } from '../../components/health-reporter/reporter';

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
    system: { loadAvg1m: 0.123456, cpuCount: 2, memFreeBytes: 1000, memTotalBytes: 2000, diskFreeBytes: 5000 },
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
