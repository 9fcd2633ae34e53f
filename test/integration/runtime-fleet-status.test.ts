/**
 * The runtime reports component states to IoT Core the way the nucleus's fleet status service
 * does, on $aws/things/<thing>/greengrassv2/health/json: every component at launch, the changed
 * ones when a component errs or breaks, and every component on the cadence.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { startEmbeddedBroker } from '../../runtime/broker';
import type { FleetStatusMessage } from '../../runtime/fleet-status';
import { startRuntime, testRecipe, waitFor } from '../helpers/runtime-fixture';

test('fleet status: COMPLETE at launch, a PARTIAL UNHEALTHY message naming the BROKEN component, and COMPLETE again on the cadence', { timeout: 30_000 }, async () => {
  const broker = await startEmbeddedBroker();
  const cloud = await mqtt.connectAsync(broker.url, { clientId: `fss-test-${process.pid}` });
  const messages: FleetStatusMessage[] = [];
  cloud.on('message', (topic, payload) => {
    assert.equal(topic, '$aws/things/test-thing/greengrassv2/health/json');
    messages.push(JSON.parse(payload.toString('utf8')) as FleetStatusMessage);
  });
  await cloud.subscribeAsync('$aws/things/+/greengrassv2/health/json', { qos: 1 });
  const fixture = await startRuntime([testRecipe('test.Steady', 'exec sleep 600'), testRecipe('test.Failing', 'exit 1')], {
    brokerUrl: broker.url,
    restartDelayMs: 50,
    fleetStatusIntervalSec: 2,
  });
  try {
    const launch = await waitFor('the launch message', () => messages[0]);
    assert.equal(launch.messageType, 'COMPLETE');
    assert.equal(launch.trigger, 'NUCLEUS_LAUNCH');
    assert.equal(launch.thing, 'test-thing');
    assert.equal(launch.sequenceNumber, 1);
    assert.deepEqual(launch.components.map((c) => c.componentName).sort(), ['test.Failing', 'test.Steady']);
    assert.ok(launch.components.every((c) => c.version === '1.0.0' && c.isRoot && Array.isArray(c.fleetConfigArns)));

    const broken = await waitFor('a message with test.Failing BROKEN', () =>
      messages.find((m) => m.components.some((c) => c.componentName === 'test.Failing' && c.status === 'BROKEN')),
    );
    assert.equal(broken.messageType, 'PARTIAL');
    assert.equal(broken.trigger, 'COMPONENT_STATUS_CHANGE');
    assert.equal(broken.overallDeviceStatus, 'UNHEALTHY');
    assert.ok(messages.some((m) => m.trigger === 'COMPONENT_STATUS_CHANGE' && m.components.some((c) => c.status === 'ERRORED')), 'each error was reported too');

    // The first cadence after the BROKEN report: on a loaded machine the three failed starts can
    // outlast the first cadence tick, which then rightly still shows the component ERRORED.
    const cadence = await waitFor('a cadence message after BROKEN', () => messages.find((m) => m.trigger === 'CADENCE' && m.sequenceNumber > broken.sequenceNumber), 20_000);
    assert.equal(cadence.messageType, 'COMPLETE');
    assert.equal(cadence.overallDeviceStatus, 'UNHEALTHY', 'still a BROKEN component');
    assert.deepEqual(
      Object.fromEntries(cadence.components.map((c) => [c.componentName, c.status])),
      { 'test.Steady': 'RUNNING', 'test.Failing': 'BROKEN' },
    );
    const sequence = messages.map((m) => m.sequenceNumber);
    assert.deepEqual(sequence, [...sequence].sort((a, b) => a - b), 'sequence numbers only go up');
  } finally {
    await fixture.stop();
    await cloud.endAsync(true);
    await broker.close();
  }
});
