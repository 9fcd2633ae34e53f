import { test } from 'node:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { createLogger } from '../../components/shared/logger';
import { Pipeline } from '../../scripts/pipeline';
import { tempRoot, waitFor } from '../helpers/runtime-fixture';

const PUBLISHER = 'com.elevator.MqttPublisher';
const BUFFER = 'com.elevator.StreamBuffer';

test('components killed with SIGKILL mid-run are restarted, and every produced record is archived exactly once', { timeout: 240_000 }, async () => {
  const root = tempRoot('pl-');
  const pipeline = new Pipeline({
    root,
    thingName: 'chaos-thing-01',
    durationMs: 16_000,
    drainTimeoutMs: 90_000,
    resume: false,
    timeScale: 20,
    logger: createLogger('pipeline-test'),
  });
  const running = pipeline.run();
  const killed: string[] = [];
  const kill = async (component: string) => {
    const pid = await waitFor(`${component} to run`, () => {
      const status = pipeline.runtimeStatus()?.components[component];
      return status?.state === 'RUNNING' && status.pid ? status.pid : undefined;
    });
    process.kill(pid, 'SIGKILL');
    killed.push(component);
    // Restarted: RUNNING again under a new pid.
    await waitFor(`${component} to be restarted`, () => {
      const status = pipeline.runtimeStatus()?.components[component];
      return status?.state === 'RUNNING' && status.pid !== undefined && status.pid !== pid && status.restarts >= 1;
    });
  };
  await new Promise((r) => setTimeout(r, 5_000));
  await kill(PUBLISHER);
  await new Promise((r) => setTimeout(r, 3_000));
  await kill(BUFFER);
  const summary = await running;
  assert.deepEqual(killed, [PUBLISHER, BUFFER]);
  assert.ok(summary.componentRestarts[PUBLISHER] >= 1, 'the runtime restarted the publisher');
  assert.ok(summary.componentRestarts[BUFFER] >= 1, 'the runtime restarted the buffer');
  assert.ok(summary.produced > 100, `records were produced (${summary.produced})`);
  assert.equal(summary.drained, true);
  assert.equal(summary.missing, 0);
  assert.equal(summary.archived, summary.produced);
  for (const stream of summary.streams) assert.equal(stream.watermark, stream.produced, `${stream.stream} watermark reaches everything produced`);
  // The HealthReporter's message went through the same runtime bridge to the cloud.
  const health = JSON.parse(readFileSync(join(root, 'cloud-archive', 'health', 'chaos-thing-01', 'latest.json'), 'utf8'));
  assert.equal(health.device, 'chaos-thing-01');
  assert.match(health.health.status, /^(healthy|degraded|unhealthy)$/);
  assert.deepEqual(Object.keys(health.health.components).sort(), ['MqttPublisher', 'SensorAcquisition', 'StreamBuffer']);
});
