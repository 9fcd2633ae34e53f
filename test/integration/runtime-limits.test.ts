import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GreengrassIpc, classifyIpcError, describeIpcError } from '../../components/shared/ipc';
import { createLogger } from '../../components/shared/logger';
import { startRuntime, testRecipe, waitFor, type RuntimeFixture } from '../helpers/runtime-fixture';
import { freePort } from '../helpers/mosquitto';

// Limits the nucleus enforces on IPC and on the IoT Core bridge, driven through the real SDK client.
const COMPONENT = 'test.Limits';
const accessControl = {
  'aws.greengrass.ipc.mqttproxy': {
    'test.Limits:mqttproxy:1': { operations: ['*'], resources: ['*'] },
  },
  'aws.greengrass.ipc.pubsub': {
    'test.Limits:pubsub:1': { operations: ['*'], resources: ['*'] },
  },
};

async function connectAs(fixture: RuntimeFixture): Promise<GreengrassIpc> {
  return GreengrassIpc.connect({ logger: createLogger('limits-test'), socketPath: fixture.runtime.socketPath, authToken: fixture.runtime.tokenFor(COMPONENT)!, connectDeadlineMs: 10_000 });
}

/**
 * Messages already spooled once the component runs: the runtime's own fleet status messages (at
 * launch, and when every component reached RUNNING) wait in the spooler too while it is offline.
 */
async function spooledOnceSettled(fixture: RuntimeFixture): Promise<number> {
  await waitFor('the component RUNNING', () => fixture.runtime.status().components[COMPONENT].state === 'RUNNING');
  return fixture.runtime.status().spooler.messages;
}

async function refusal(call: Promise<unknown>): Promise<string> {
  try {
    await call;
  } catch (error) {
    assert.equal(classifyIpcError(error), 'service', `refused as a service error: ${describeIpcError(error)}`);
    return describeIpcError(error);
  }
  assert.fail('the call was accepted');
}

test('IoT Core topic limits and the message size limit are enforced on PublishToIoTCore and SubscribeToIoTCore', { timeout: 30_000 }, async () => {
  const fixture = await startRuntime([testRecipe(COMPONENT, 'sleep 600', accessControl)]);
  const ipc = await connectAs(fixture);
  try {
    assert.match(await refusal(ipc.publishToIoTCore('a/b/c/d/e/f/g/h/i', 'x')), /8 forward slashes; AWS IoT Core allows at most 7/);
    assert.match(await refusal(ipc.subscribeToIoTCore(`t/${'x'.repeat(300)}`, () => undefined)), /bytes; AWS IoT Core allows at most 256/);
    assert.match(await refusal(ipc.publishToIoTCore('dt/+/x', 'x')), /wildcards/);
    assert.match(await refusal(ipc.publishToIoTCore('dt/big', Buffer.alloc(128 * 1024 + 1))), /mqtt\.maxMessageSizeInBytes is 131072/);
    await ipc.publishToIoTCore('a/b/c/d/e/f/g/h', Buffer.alloc(128 * 1024));
  } finally {
    await ipc.close();
    await fixture.stop();
  }
});

test('at most 50 subscriptions on one IPC connection; the 51st is refused', { timeout: 30_000 }, async () => {
  const fixture = await startRuntime([testRecipe(COMPONENT, 'sleep 600', accessControl)]);
  const ipc = await connectAs(fixture);
  try {
    for (let i = 0; i < 50; i += 1) await ipc.subscribeToTopic(`limits/${i}`, () => undefined);
    assert.match(await refusal(ipc.subscribeToTopic('limits/50', () => undefined)), /at most 50 subscriptions per IPC connection/);
  } finally {
    await ipc.close();
    await fixture.stop();
  }
});

test('while the bridge is offline a QoS 0 publish is refused and a QoS 1 publish is spooled', { timeout: 30_000 }, async () => {
  const port = await freePort();
  const fixture = await startRuntime([testRecipe(COMPONENT, 'sleep 600', accessControl)], { brokerUrl: `mqtt://127.0.0.1:${port}` });
  const ipc = await connectAs(fixture);
  try {
    const before = await spooledOnceSettled(fixture);
    assert.match(await refusal(ipc.publishToIoTCore('dt/x', 'lost', { qos: 0 })), /QoS 0 publish refused: not connected/);
    await ipc.publishToIoTCore('dt/x', 'kept', { qos: 1 });
    assert.equal(fixture.runtime.status().spooler.messages - before, 1);
  } finally {
    await ipc.close();
    await fixture.stop();
  }
});

test('with keepQos0WhenOffline a QoS 0 publish made while the bridge is offline is spooled too', { timeout: 30_000 }, async () => {
  const port = await freePort();
  const fixture = await startRuntime([testRecipe(COMPONENT, 'sleep 600', accessControl)], { brokerUrl: `mqtt://127.0.0.1:${port}`, keepQos0WhenOffline: true });
  const ipc = await connectAs(fixture);
  try {
    const before = await spooledOnceSettled(fixture);
    await ipc.publishToIoTCore('dt/x', 'kept at QoS 0', { qos: 0 });
    await ipc.publishToIoTCore('dt/x', 'kept at QoS 1', { qos: 1 });
    assert.equal(fixture.runtime.status().spooler.messages - before, 2, 'both wait in the spooler');
  } finally {
    await ipc.close();
    await fixture.stop();
  }
});
