import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { RECORD_KINDS } from '../../components/shared/records';
import { dataTopic, EPOCH_STREAM, LOSS_STREAM } from '../../components/shared/topics';
import { parseRecipe } from '../../runtime/recipe';
import { AuthorizationError, Authorizer, duplicatePolicyIds, MQTTPROXY_SERVICE, PUBSUB_SERVICE, type AccessControl } from '../../runtime/authorization';

const THING = 'elevator-0001';
const COMPONENT = 'com.example.SensorAcquisition';
const PUBLISH = 'aws.greengrass#PublishToTopic';
const SUBSCRIBE = 'aws.greengrass#SubscribeToTopic';
const IOT_PUBLISH = 'aws.greengrass#PublishToIoTCore';
const IOT_SUBSCRIBE = 'aws.greengrass#SubscribeToIoTCore';

const authorizer = new Authorizer(THING);

function allowed(accessControl: AccessControl | undefined, service: string, operation: string, resource: string): boolean {
  try {
    authorizer.check(COMPONENT, accessControl, service, operation, resource);
    return true;
  } catch (error) {
    assert.ok(error instanceof AuthorizationError, `expected AuthorizationError, got ${String(error)}`);
    return false;
  }
}

function policy(service: string, operations: string[], resources: string[]): AccessControl {
  return { [service]: { [`${COMPONENT}:policy:1`]: { policyDescription: 'test', operations, resources } } };
}

describe('Authorizer: deny by default', () => {
  test('a component without accessControl is denied', () => {
    assert.equal(allowed(undefined, PUBSUB_SERVICE, PUBLISH, 'a/b'), false);
  });

  test('a component with an empty accessControl is denied', () => {
    assert.equal(allowed({}, PUBSUB_SERVICE, PUBLISH, 'a/b'), false);
    assert.equal(allowed({ [PUBSUB_SERVICE]: {} }, PUBSUB_SERVICE, PUBLISH, 'a/b'), false);
  });

  test('a policy for another operation of the same service does not allow this one', () => {
    const ac = policy(PUBSUB_SERVICE, [SUBSCRIBE], ['a/b']);
    assert.equal(allowed(ac, PUBSUB_SERVICE, SUBSCRIBE, 'a/b'), true);
    assert.equal(allowed(ac, PUBSUB_SERVICE, PUBLISH, 'a/b'), false);
  });

  test('a policy granted under another service does not allow the same operation and resource here', () => {
    const ac = policy(MQTTPROXY_SERVICE, ['*'], ['*']);
    assert.equal(allowed(ac, MQTTPROXY_SERVICE, IOT_PUBLISH, 'a/b'), true);
    assert.equal(allowed(ac, PUBSUB_SERVICE, PUBLISH, 'a/b'), false);
  });

  test('a resource that is not listed is denied even when the operation is', () => {
    const ac = policy(PUBSUB_SERVICE, [PUBLISH], ['a/b']);
    assert.equal(allowed(ac, PUBSUB_SERVICE, PUBLISH, 'a/c'), false);
    assert.equal(allowed(ac, PUBSUB_SERVICE, PUBLISH, 'a/b/c'), false);
    assert.equal(allowed(ac, PUBSUB_SERVICE, PUBLISH, 'a'), false);
  });

  test('operation and resource must match within one policy: two half-matching policies grant nothing', () => {
    const ac: AccessControl = {
      [PUBSUB_SERVICE]: {
        p1: { operations: [PUBLISH], resources: ['topic/one'] },
        p2: { operations: [SUBSCRIBE], resources: ['topic/two'] },
      },
    };
    assert.equal(allowed(ac, PUBSUB_SERVICE, PUBLISH, 'topic/two'), false);
    assert.equal(allowed(ac, PUBSUB_SERVICE, SUBSCRIBE, 'topic/one'), false);
    assert.equal(allowed(ac, PUBSUB_SERVICE, PUBLISH, 'topic/one'), true);
    assert.equal(allowed(ac, PUBSUB_SERVICE, SUBSCRIBE, 'topic/two'), true);
  });
});

describe('Authorizer: "*" in operations and resources', () => {
  test('operation "*" allows every operation of that service on the listed resources only', () => {
    const ac = policy(PUBSUB_SERVICE, ['*'], ['a/b']);
    assert.equal(allowed(ac, PUBSUB_SERVICE, PUBLISH, 'a/b'), true);
    assert.equal(allowed(ac, PUBSUB_SERVICE, SUBSCRIBE, 'a/b'), true);
    assert.equal(allowed(ac, PUBSUB_SERVICE, PUBLISH, 'a/c'), false);
  });

  test('resource "*" allows any resource, for pubsub and mqttproxy alike', () => {
    for (const service of [PUBSUB_SERVICE, MQTTPROXY_SERVICE]) {
      const ac = policy(service, ['*'], ['*']);
      for (const resource of ['a', 'a/b/c', '$aws/things/x/shadow/update', '+', '#', '']) {
        assert.equal(allowed(ac, service, 'any-op', resource), true, `${service} ${resource}`);
      }
    }
  });

  test('"*" inside a resource is a glob over any run of characters, including "/" and the empty run', () => {
    const ac = policy(PUBSUB_SERVICE, [PUBLISH], ['elevator/*/status']);
    assert.equal(allowed(ac, PUBSUB_SERVICE, PUBLISH, 'elevator/x/status'), true);
    assert.equal(allowed(ac, PUBSUB_SERVICE, PUBLISH, 'elevator/a/b/c/status'), true);
    assert.equal(allowed(ac, PUBSUB_SERVICE, PUBLISH, 'elevator//status'), true);
    assert.equal(allowed(ac, PUBSUB_SERVICE, PUBLISH, 'elevator/x/status/more'), false);
    assert.equal(allowed(ac, PUBSUB_SERVICE, PUBLISH, 'other/x/status'), false);
  });

  test('a trailing and a leading "*" glob anchor to the other end of the resource', () => {
    const ac = policy(PUBSUB_SERVICE, [PUBLISH], ['elevator/heartbeat/*', '*/health']);
    assert.equal(allowed(ac, PUBSUB_SERVICE, PUBLISH, 'elevator/heartbeat/'), true);
    assert.equal(allowed(ac, PUBSUB_SERVICE, PUBLISH, 'elevator/heartbeat/SensorAcquisition'), true);
    assert.equal(allowed(ac, PUBSUB_SERVICE, PUBLISH, 'x/elevator/heartbeat/a'), false);
    assert.equal(allowed(ac, PUBSUB_SERVICE, PUBLISH, 'dt/elevator/thing/health'), true);
    assert.equal(allowed(ac, PUBSUB_SERVICE, PUBLISH, 'dt/elevator/thing/health/x'), false);
  });

  test('regular-expression characters around a glob are literal', () => {
    const ac = policy(PUBSUB_SERVICE, [PUBLISH], ['a.b(c)?*']);
    assert.equal(allowed(ac, PUBSUB_SERVICE, PUBLISH, 'a.b(c)?xyz'), true);
    assert.equal(allowed(ac, PUBSUB_SERVICE, PUBLISH, 'aXb(c)?xyz'), false);
    assert.equal(allowed(ac, PUBSUB_SERVICE, PUBLISH, 'a.bc'), false);
  });
});

describe('Authorizer: MQTT wildcards', () => {
  test('for mqttproxy, "+" in a resource matches exactly one topic level', () => {
    const ac = policy(MQTTPROXY_SERVICE, [IOT_PUBLISH], ['dt/elevator/+/motor']);
    assert.equal(allowed(ac, MQTTPROXY_SERVICE, IOT_PUBLISH, 'dt/elevator/thing-7/motor'), true);
    assert.equal(allowed(ac, MQTTPROXY_SERVICE, IOT_PUBLISH, 'dt/elevator/a/b/motor'), false);
    assert.equal(allowed(ac, MQTTPROXY_SERVICE, IOT_PUBLISH, 'dt/elevator/thing-7/run'), false);
  });

  test('for mqttproxy, "#" in a resource matches the parent level and everything below it', () => {
    const ac = policy(MQTTPROXY_SERVICE, [IOT_SUBSCRIBE], ['cmd/elevator/#']);
    assert.equal(allowed(ac, MQTTPROXY_SERVICE, IOT_SUBSCRIBE, 'cmd/elevator'), true);
    assert.equal(allowed(ac, MQTTPROXY_SERVICE, IOT_SUBSCRIBE, 'cmd/elevator/thing/ack'), true);
    assert.equal(allowed(ac, MQTTPROXY_SERVICE, IOT_SUBSCRIBE, 'cmd/other/thing/ack'), false);
  });

  test('for mqttproxy, a subscription filter with "+" where the policy names a level literally is denied', () => {
    const ac = policy(MQTTPROXY_SERVICE, [IOT_SUBSCRIBE], ['cmd/elevator/thing/+']);
    assert.equal(allowed(ac, MQTTPROXY_SERVICE, IOT_SUBSCRIBE, 'cmd/elevator/thing/ack'), true);
    assert.equal(allowed(ac, MQTTPROXY_SERVICE, IOT_SUBSCRIBE, 'cmd/elevator/+/ack'), false);
    assert.equal(allowed(ac, MQTTPROXY_SERVICE, IOT_SUBSCRIBE, 'cmd/+/thing/ack'), false);
  });

  test('for mqttproxy, a requested subscription filter must be no wider than the policy filter', () => {
    const plus = policy(MQTTPROXY_SERVICE, [IOT_SUBSCRIBE], ['cmd/elevator/+']);
    assert.equal(allowed(plus, MQTTPROXY_SERVICE, IOT_SUBSCRIBE, 'cmd/elevator/+'), true);
    assert.equal(allowed(plus, MQTTPROXY_SERVICE, IOT_SUBSCRIBE, 'cmd/elevator/#'), false, 'cmd/elevator/+ must not grant cmd/elevator/#');
    assert.equal(allowed(plus, MQTTPROXY_SERVICE, IOT_SUBSCRIBE, 'cmd/+/ack'), false);
    const hash = policy(MQTTPROXY_SERVICE, [IOT_SUBSCRIBE], ['cmd/elevator/#']);
    assert.equal(allowed(hash, MQTTPROXY_SERVICE, IOT_SUBSCRIBE, 'cmd/elevator/#'), true);
    assert.equal(allowed(hash, MQTTPROXY_SERVICE, IOT_SUBSCRIBE, 'cmd/elevator/+'), true);
    assert.equal(allowed(hash, MQTTPROXY_SERVICE, IOT_SUBSCRIBE, 'cmd/elevator/+/x/#'), true);
    assert.equal(allowed(hash, MQTTPROXY_SERVICE, IOT_SUBSCRIBE, 'cmd/#'), false);
    assert.equal(allowed(hash, MQTTPROXY_SERVICE, IOT_SUBSCRIBE, '#'), false);
  });

  test('for mqttproxy, a policy filter is honoured as a filter on "$" topics when it names the "$" level', () => {
    const ac = policy(MQTTPROXY_SERVICE, [IOT_PUBLISH], ['$aws/things/{iot:thingName}/shadow/name/+/update', '$aws/rules/#']);
    assert.equal(allowed(ac, MQTTPROXY_SERVICE, IOT_PUBLISH, `$aws/things/${THING}/shadow/name/health/update`), true);
    assert.equal(allowed(ac, MQTTPROXY_SERVICE, IOT_PUBLISH, '$aws/rules/ingest/dt/x'), true);
    assert.equal(allowed(ac, MQTTPROXY_SERVICE, IOT_PUBLISH, `$aws/things/${THING}/shadow/update`), false);
  });

  test('for mqttproxy, a resource "#" allows every topic including "$aws/..." ones, as the nucleus does', () => {
    const ac = policy(MQTTPROXY_SERVICE, [IOT_PUBLISH], ['#']);
    assert.equal(allowed(ac, MQTTPROXY_SERVICE, IOT_PUBLISH, 'dt/elevator/thing/motor'), true);
    assert.equal(allowed(ac, MQTTPROXY_SERVICE, IOT_PUBLISH, `$aws/things/${THING}/shadow/name/health/update`), true);
  });

  test('for pubsub, "+" in a resource is a literal character, not a wildcard', () => {
    const ac = policy(PUBSUB_SERVICE, [SUBSCRIBE], ['elevator/heartbeat/+']);
    assert.equal(allowed(ac, PUBSUB_SERVICE, SUBSCRIBE, 'elevator/heartbeat/StreamBuffer'), false);
    assert.equal(allowed(ac, PUBSUB_SERVICE, SUBSCRIBE, 'elevator/heartbeat/+'), true);
  });

  test('for pubsub, "#" in a resource is a literal character, not a wildcard', () => {
    const ac = policy(PUBSUB_SERVICE, [PUBLISH], ['elevator/#']);
    assert.equal(allowed(ac, PUBSUB_SERVICE, PUBLISH, 'elevator'), false);
    assert.equal(allowed(ac, PUBSUB_SERVICE, PUBLISH, 'elevator/heartbeat/x'), false);
    assert.equal(allowed(ac, PUBSUB_SERVICE, PUBLISH, 'elevator/#'), true);
  });
});

describe('Authorizer: {iot:thingName}', () => {
  test('"{iot:thingName}" in a resource stands for the core device\'s thing name', () => {
    const ac = policy(MQTTPROXY_SERVICE, [IOT_PUBLISH], ['dt/elevator/{iot:thingName}/#']);
    assert.equal(allowed(ac, MQTTPROXY_SERVICE, IOT_PUBLISH, `dt/elevator/${THING}/motor`), true);
    assert.equal(allowed(ac, MQTTPROXY_SERVICE, IOT_PUBLISH, 'dt/elevator/elevator-0002/motor'), false);
    assert.equal(allowed(ac, MQTTPROXY_SERVICE, IOT_PUBLISH, 'dt/elevator/{iot:thingName}/motor'), false);
  });

  test('every "{iot:thingName}" in a resource is replaced, also for pubsub and exact resources', () => {
    const ac = policy(PUBSUB_SERVICE, [PUBLISH], ['{iot:thingName}/x/{iot:thingName}']);
    assert.equal(allowed(ac, PUBSUB_SERVICE, PUBLISH, `${THING}/x/${THING}`), true);
    assert.equal(allowed(ac, PUBSUB_SERVICE, PUBLISH, `${THING}/x/{iot:thingName}`), false);
  });

  test('the thing name comes from the Authorizer, so another device\'s authorizer denies the same topic', () => {
    const ac = policy(MQTTPROXY_SERVICE, [IOT_PUBLISH], ['dt/elevator/{iot:thingName}/motor']);
    assert.throws(() => new Authorizer('elevator-0002').check(COMPONENT, ac, MQTTPROXY_SERVICE, IOT_PUBLISH, `dt/elevator/${THING}/motor`), AuthorizationError);
    assert.doesNotThrow(() => new Authorizer('elevator-0002').check(COMPONENT, ac, MQTTPROXY_SERVICE, IOT_PUBLISH, 'dt/elevator/elevator-0002/motor'));
  });
});

describe('Authorizer: error message', () => {
  test('names the principal, service:operation and resource', () => {
    assert.throws(
      () => authorizer.check('com.example.Intruder', policy(PUBSUB_SERVICE, [PUBLISH], ['a/b']), PUBSUB_SERVICE, PUBLISH, 'secret/topic'),
      (error: unknown) => {
        assert.ok(error instanceof AuthorizationError);
        assert.equal(
          error.message,
          'Principal com.example.Intruder is not authorized to perform aws.greengrass.ipc.pubsub:aws.greengrass#PublishToTopic on resource secret/topic',
        );
        return true;
      },
    );
  });
});

describe('Authorizer: "${c}" escapes and unique policy ids', () => {
  test('"${*}", "${?}" and "${$}" match the literal characters, not wildcards', () => {
    const ac = policy(PUBSUB_SERVICE, [PUBLISH], ['alerts/${*}/${?}/${$}']);
    assert.equal(allowed(ac, PUBSUB_SERVICE, PUBLISH, 'alerts/*/?/$'), true);
    assert.equal(allowed(ac, PUBSUB_SERVICE, PUBLISH, 'alerts/anything/?/$'), false, 'an escaped * is not a glob');
    assert.equal(allowed(ac, PUBSUB_SERVICE, PUBLISH, 'alerts/*/x/$'), false, '? is literal as well');
  });

  test('an escaped "+" or "#" in an mqttproxy resource is a literal level, not an MQTT wildcard', () => {
    const ac = policy(MQTTPROXY_SERVICE, [IOT_SUBSCRIBE], ['cmd/${+}/${#}']);
    assert.equal(allowed(ac, MQTTPROXY_SERVICE, IOT_SUBSCRIBE, 'cmd/+/#'), true);
    assert.equal(allowed(ac, MQTTPROXY_SERVICE, IOT_SUBSCRIBE, 'cmd/a/b'), false);
  });

  test('duplicatePolicyIds names every policy id used by more than one component', () => {
    const shared = { operations: [PUBLISH], resources: ['x'] };
    const duplicates = duplicatePolicyIds([
      { name: 'a.One', accessControl: { [PUBSUB_SERVICE]: { 'same:1': shared, 'a:2': shared } } },
      { name: 'b.Two', accessControl: { [MQTTPROXY_SERVICE]: { 'same:1': shared } } },
      { name: 'c.Three', accessControl: undefined },
    ]);
    assert.deepEqual(duplicates, [{ policyId: 'same:1', components: ['a.One', 'b.Two'] }]);
  });
});

describe('the shipped MqttPublisher recipe', () => {
  test('allows PublishToIoTCore on every stream the device can produce and every report, and nothing of another thing', () => {
    const recipe = parseRecipe(readFileSync(join(__dirname, '..', '..', '..', 'recipes', 'com.elevator.MqttPublisher.yaml'), 'utf8'), 'com.elevator.MqttPublisher.yaml');
    const accessControl = (recipe.recipe.ComponentConfiguration?.DefaultConfiguration as { accessControl?: AccessControl } | undefined)?.accessControl;
    const streams = [...RECORD_KINDS.keys(), LOSS_STREAM, EPOCH_STREAM];
    const refused = streams.filter((stream) => !allowed(accessControl, MQTTPROXY_SERVICE, IOT_PUBLISH, dataTopic(THING, stream)));
    assert.deepEqual(refused, [], 'a stream the policy refuses never leaves the device');
    assert.equal(allowed(accessControl, MQTTPROXY_SERVICE, IOT_PUBLISH, dataTopic('another-thing', 'motor')), false);
  });
});
