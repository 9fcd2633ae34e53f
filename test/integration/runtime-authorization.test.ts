import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { GreengrassIpc, classifyIpcError } from '../../components/shared/ipc';
import { createLogger } from '../../components/shared/logger';
import { startRuntime, testRecipe, type RuntimeFixture } from '../helpers/runtime-fixture';

// The nucleus's authorization rules, driven through the real SDK client as a component would meet
// them: each case is one allowed and one denied call.
const COMPONENT = 'test.Auth';
const accessControl = {
  'aws.greengrass.ipc.pubsub': {
    'test.Auth:pubsub:1': {
      operations: ['aws.greengrass#PublishToTopic', 'aws.greengrass#SubscribeToTopic'],
      resources: ['glob/*/x', 'literal/+/#', 'esc/${*}'],
    },
  },
  'aws.greengrass.ipc.mqttproxy': {
    'test.Auth:mqttproxy:1': { operations: ['*'], resources: ['dt/elevator/{iot:thingName}/+', 'cmd/#'] },
  },
};

let fixture: RuntimeFixture;
let ipc: GreengrassIpc;

before(async () => {
  fixture = await startRuntime([testRecipe(COMPONENT, 'sleep 600', accessControl)], { thingName: 'auth-thing' });
  ipc = await GreengrassIpc.connect({ logger: createLogger('auth-test'), socketPath: fixture.runtime.socketPath, authToken: fixture.runtime.tokenFor(COMPONENT)!, connectDeadlineMs: 10_000 });
});

after(async () => {
  await ipc?.close();
  await fixture?.stop();
});

async function denied(call: Promise<unknown>): Promise<boolean> {
  try {
    await call;
    return false;
  } catch (error) {
    assert.equal(classifyIpcError(error), 'unauthorized', String((error as { description?: string }).description ?? error));
    return true;
  }
}

test('"*" in a resource is a glob over any characters, "/" included', async () => {
  await ipc.publishToTopic('glob/a/b/x', {});
  assert.ok(await denied(ipc.publishToTopic('glob/a/y', {})));
});

test('for pubsub, "+" and "#" in a resource are literal characters', async () => {
  await ipc.subscribeToTopic('literal/+/#', () => undefined);
  assert.ok(await denied(ipc.subscribeToTopic('literal/a/#', () => undefined)), 'a pubsub "+" is not a wildcard');
});

test('"${*}" is a literal "*", not a glob', async () => {
  await ipc.publishToTopic('esc/*', {});
  assert.ok(await denied(ipc.publishToTopic('esc/anything', {})));
});

test('"*" as an operation, MQTT wildcards and {iot:thingName} for mqttproxy', async () => {
  await ipc.publishToIoTCore('dt/elevator/auth-thing/motor', 'x');
  await ipc.subscribeToIoTCore('cmd/a/b', () => undefined);
  assert.ok(await denied(ipc.publishToIoTCore('dt/elevator/other-thing/motor', 'x')), '{iot:thingName} is this device only');
  assert.ok(await denied(ipc.publishToIoTCore('dt/elevator/auth-thing/motor/extra', 'x')), '"+" is exactly one level');
  assert.ok(await denied(ipc.subscribeToIoTCore('dt/elevator/auth-thing/#', () => undefined)), 'a requested "#" is wider than a policy "+"');
});
