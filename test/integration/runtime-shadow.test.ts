import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { classifyIpcError, describeIpcError, GreengrassIpc } from '../../components/shared/ipc';
import { createLogger } from '../../components/shared/logger';
import { Authorizer, type AccessControl } from '../../runtime/authorization';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../runtime/broker';
import { EventStreamRpcServer, FLAG_CONNECTION_ACCEPTED, MessageType } from '../../runtime/eventstream-server';
import { IotBridge } from '../../runtime/iot-bridge';
import { IpcService, type ComponentHandle, type RuntimeControl } from '../../runtime/ipc-service';
import { LocalPubSub } from '../../runtime/local-pubsub';
import { shadowOperations } from '../../runtime/shadow-operations';
import { ShadowNotFoundError, ShadowStore } from '../../runtime/shadow-store';
import { RawIpcPeer } from '../helpers/raw-ipc';
import { tempRoot } from '../helpers/runtime-fixture';

/**
 * The shadow operations through the real SDK client, on an IpcService built the way LocalRuntime
 * builds one, with shadowOperations(store) as its extra operations.
 */
const THING = 'test-thing';
const USER = 'test.ShadowUser';
const STRANGER = 'test.NoShadowPolicy';
const TOKENS: Record<string, string> = { 'token-user': USER, 'token-stranger': STRANGER };

const ACCESS: Record<string, AccessControl> = {
  [USER]: {
    'aws.greengrass.ShadowManager': {
      'test.ShadowUser:shadow:1': {
        policyDescription: 'the classic shadow, config, big and page-* named shadows of this core',
        operations: ['aws.greengrass#GetThingShadow', 'aws.greengrass#UpdateThingShadow', 'aws.greengrass#DeleteThingShadow'],
        resources: [
          '$aws/things/{iot:thingName}/shadow',
          '$aws/things/{iot:thingName}/shadow/name/config',
          '$aws/things/{iot:thingName}/shadow/name/big',
          '$aws/things/{iot:thingName}/shadow/name/page-*',
        ],
      },
      'test.ShadowUser:shadow:2': {
        policyDescription: 'list this core thing',
        operations: ['aws.greengrass#ListNamedShadowsForThing'],
        resources: ['{iot:thingName}'],
      },
    },
  },
  [STRANGER]: {},
};

let root: string;
let store: ShadowStore;
let broker: EmbeddedBroker;
let bridge: IotBridge;
let server: EventStreamRpcServer;
let socketPath: string;
let ipc: GreengrassIpc;

before(async () => {
  root = tempRoot('sh-');
  socketPath = join(root, 'ipc.socket');
  const logger = createLogger('runtime-shadow-test');
  logger.level = process.env.TEST_RUNTIME_LOG_LEVEL ?? 'error';
  const handle = (name: string): ComponentHandle => ({ name, configuration: () => ({ accessControl: ACCESS[name] }), reportState: () => undefined });
  const control: RuntimeControl = {
    principalForToken: (token) => TOKENS[token],
    component: (name) => (name in ACCESS ? handle(name) : undefined),
    stopComponent: async () => undefined,
    restartComponent: async () => undefined,
  };
  broker = await startEmbeddedBroker();
  bridge = new IotBridge({ brokerUrl: broker.url, clientId: THING, logger });
  bridge.start();
  store = new ShadowStore(join(root, 'gg'));
  const service = new IpcService(control, new Authorizer(THING), new LocalPubSub(), bridge, logger, shadowOperations(store));
  server = new EventStreamRpcServer(socketPath, service, logger);
  await server.listen();
  ipc = await GreengrassIpc.connect({ logger, socketPath, authToken: 'token-user', connectDeadlineMs: 5000 });
});

after(async () => {
  await ipc?.close();
  await server?.close();
  await bridge?.stop();
  await broker?.close();
});

function rejectsWith(pattern: RegExp): (error: unknown) => boolean {
  return (error) => {
    assert.match(describeIpcError(error), pattern);
    return true;
  };
}

test('classic shadow: absent, then updated, read back with delta and metadata, and stored on disk', async () => {
  assert.equal(await ipc.getThingShadow(THING), undefined);
  const before = Math.floor(Date.now() / 1000);
  const desired = await ipc.updateThingShadow(THING, '', { state: { desired: { floor: 5, door: 'closed' } }, clientToken: 'c-1' });
  assert.equal(desired.version, 1);
  assert.equal(desired.clientToken, 'c-1');
  assert.deepEqual(desired.state, { desired: { floor: 5, door: 'closed' } });
  const floorStamp = (desired.metadata as { desired: { floor: { timestamp: number } } }).desired.floor.timestamp;
  assert.ok(floorStamp >= before && floorStamp <= Math.floor(Date.now() / 1000) + 1, `metadata timestamp ${floorStamp} is in seconds`);

  const reported = await ipc.updateThingShadow(THING, '', { state: { reported: { floor: 3, door: 'closed' } }, version: 1 });
  assert.equal(reported.version, 2);

  const shadow = await ipc.getThingShadow(THING);
  assert.ok(shadow);
  assert.deepEqual(shadow.state, { desired: { floor: 5, door: 'closed' }, reported: { floor: 3, door: 'closed' }, delta: { floor: 5 } });
  assert.equal(shadow.version, 2);
  assert.deepEqual(Object.keys(shadow.metadata).sort(), ['desired', 'reported']);
  assert.ok(existsSync(join(root, 'gg', 'shadows', THING, 'classic.json')));
  assert.deepEqual(JSON.parse(readFileSync(join(root, 'gg', 'shadows', THING, 'classic.json'), 'utf8')).state.reported, { floor: 3, door: 'closed' });
});

test('a null deletes a key; desired: null removes the section and its delta', async () => {
  await ipc.updateThingShadow(THING, 'config', { state: { desired: { mode: 'eco', speed: 2 }, reported: { mode: 'normal', speed: 2 } } });
  await ipc.updateThingShadow(THING, 'config', { state: { reported: { speed: null } } });
  let shadow = await ipc.getThingShadow(THING, 'config');
  assert.deepEqual(shadow?.state, { desired: { mode: 'eco', speed: 2 }, reported: { mode: 'normal' }, delta: { mode: 'eco', speed: 2 } });
  await ipc.updateThingShadow(THING, 'config', { state: { desired: null } });
  shadow = await ipc.getThingShadow(THING, 'config');
  assert.deepEqual(shadow?.state, { reported: { mode: 'normal' } });
  assert.equal(shadow?.version, 3);
});

test('a stale version is refused with ConflictError and changes nothing', async () => {
  const current = await ipc.getThingShadow(THING, 'config');
  assert.ok(current);
  await assert.rejects(ipc.updateThingShadow(THING, 'config', { state: { reported: { mode: 'stale' } }, version: current.version - 1 }), rejectsWith(/Version conflict/));
  const after = await ipc.getThingShadow(THING, 'config');
  assert.equal(after?.version, current.version);
  assert.deepEqual(after?.state, current.state);
});

test('a document over 8 KiB is refused and not stored; one at the limit is accepted', async () => {
  const overhead = JSON.stringify({ blob: '' }).length;
  await assert.rejects(
    ipc.updateThingShadow(THING, 'big', { state: { reported: { blob: 'x'.repeat(8192 - overhead + 1) } } }),
    rejectsWith(/exceeds the maximum size allowed/),
  );
  assert.equal(await ipc.getThingShadow(THING, 'big'), undefined);
  const fits = await ipc.updateThingShadow(THING, 'big', { state: { reported: { blob: 'x'.repeat(8192 - overhead) } } });
  assert.equal(fits.version, 1);
});

test('delete: the reply is empty, the shadow is gone, a second delete is not found, and a new one continues the version', async () => {
  await ipc.updateThingShadow(THING, 'page-doomed', { state: { reported: { n: 1 } } });
  await ipc.deleteThingShadow(THING, 'page-doomed');
  assert.equal(await ipc.getThingShadow(THING, 'page-doomed'), undefined);
  await assert.rejects(ipc.deleteThingShadow(THING, 'page-doomed'), rejectsWith(/No shadow found/));
  const recreated = await ipc.updateThingShadow(THING, 'page-doomed', { state: { reported: { n: 2 } } });
  assert.equal(recreated.version, 3, 'version 1, deleted as 2, recreated as 3 (shadow manager 2.0.4 and later)');
  await ipc.deleteThingShadow(THING, 'page-doomed');
});

test('ListNamedShadowsForThing pages through the named shadows, sorted, without the classic or deleted ones', async () => {
  for (const name of ['page-c', 'page-a', 'page-b']) await ipc.updateThingShadow(THING, name, { state: { reported: { name } } });
  const expected = ['big', 'config', 'page-a', 'page-b', 'page-c'];
  const seen: string[] = [];
  let token: string | undefined;
  let pages = 0;
  do {
    const page = await ipc.listNamedShadowsForThing(THING, 2, token);
    assert.ok(page.timestamp instanceof Date && Math.abs(page.timestamp.getTime() - Date.now()) < 60_000, 'timestamp is a Date near now');
    assert.ok(page.results.length <= 2);
    seen.push(...page.results);
    token = page.nextToken;
    pages += 1;
  } while (token && pages < 10);
  assert.deepEqual(seen, expected);
  assert.equal(pages, 3);
  assert.deepEqual((await ipc.listNamedShadowsForThing(THING)).results, expected);
  await assert.rejects(ipc.listNamedShadowsForThing(THING, 101), rejectsWith(/pageSize/));
});

test('shadows and things outside the policy get UnauthorizedError, and nothing is written', async () => {
  const refused = (error: unknown) => classifyIpcError(error) === 'unauthorized';
  await assert.rejects(ipc.updateThingShadow(THING, 'secret', { state: { reported: { x: 1 } } }), refused);
  await assert.rejects(ipc.getThingShadow(THING, 'secret'), refused);
  await assert.rejects(ipc.deleteThingShadow(THING, 'secret'), refused);
  await assert.rejects(ipc.updateThingShadow('other-thing', '', { state: { reported: { x: 1 } } }), refused);
  await assert.rejects(ipc.getThingShadow('other-thing', 'config'), refused);
  await assert.rejects(ipc.listNamedShadowsForThing('other-thing'), refused);
  assert.throws(() => store.get(THING, 'secret'), ShadowNotFoundError);
  assert.throws(() => store.get('other-thing', ''), ShadowNotFoundError);

  // A component with no shadow policy at all is denied even its own core's classic shadow.
  const stranger = await GreengrassIpc.connect({ logger: createLogger('stranger'), socketPath, authToken: 'token-stranger', connectDeadlineMs: 5000 });
  try {
    await assert.rejects(stranger.getThingShadow(THING), refused);
    await assert.rejects(stranger.listNamedShadowsForThing(THING), refused);
  } finally {
    await stranger.close();
  }
});

/** One request on a raw connection; returns the reply frame. */
async function rawCall(operation: string, request: Record<string, unknown>): Promise<{ type: MessageType; shape?: string; body: string }> {
  const peer = await RawIpcPeer.open(socketPath);
  try {
    peer.connect('token-user');
    assert.equal((await peer.next())?.flags, FLAG_CONNECTION_ACCEPTED);
    peer.send({ type: MessageType.ApplicationMessage, streamId: 1, headers: { operation, ':content-type': 'application/json' }, payload: JSON.stringify(request) });
    const reply = await peer.next();
    assert.ok(reply, `a reply to ${operation}`);
    return { type: reply.type, shape: reply.headers['service-model-type'] as string | undefined, body: reply.payload.toString('utf8') };
  } finally {
    peer.close();
  }
}

const b64 = (document: unknown) => Buffer.from(JSON.stringify(document)).toString('base64');

test('on the wire, each refusal carries the error shape the SDK model lists for the operation', async () => {
  const notFound = await rawCall('aws.greengrass#GetThingShadow', { thingName: THING, shadowName: 'page-zzz' });
  assert.equal(notFound.type, MessageType.ApplicationError);
  assert.equal(notFound.shape, 'aws.greengrass#ResourceNotFoundError');

  const current = store.get(THING, 'config').version;
  const conflict = await rawCall('aws.greengrass#UpdateThingShadow', { thingName: THING, shadowName: 'config', payload: b64({ state: { reported: { a: 1 } }, version: current + 5 }) });
  assert.equal(conflict.shape, 'aws.greengrass#ConflictError');
  assert.match(JSON.parse(conflict.body).message, /Version conflict/);

  let deep: Record<string, unknown> = { leaf: 1 };
  for (let i = 0; i < 6; i += 1) deep = { [`l${i}`]: deep };
  const tooDeep = await rawCall('aws.greengrass#UpdateThingShadow', { thingName: THING, shadowName: 'config', payload: b64({ state: { desired: deep } }) });
  assert.equal(tooDeep.shape, 'aws.greengrass#InvalidArgumentsError');
  assert.match(JSON.parse(tooDeep.body).message, /maximum is 6/);

  const badJson = await rawCall('aws.greengrass#UpdateThingShadow', { thingName: THING, shadowName: 'config', payload: Buffer.from('{not json').toString('base64') });
  assert.equal(badJson.shape, 'aws.greengrass#InvalidArgumentsError');

  const badName = await rawCall('aws.greengrass#GetThingShadow', { thingName: THING, shadowName: 'no/slashes' });
  assert.equal(badName.shape, 'aws.greengrass#InvalidArgumentsError');

  const denied = await rawCall('aws.greengrass#DeleteThingShadow', { thingName: THING, shadowName: 'secret' });
  assert.equal(denied.shape, 'aws.greengrass#UnauthorizedError');
  assert.match(JSON.parse(denied.body).message, /not authorized to perform aws\.greengrass\.ShadowManager:aws\.greengrass#DeleteThingShadow on resource \$aws\/things\/test-thing\/shadow\/name\/secret/);

  const listed = await rawCall('aws.greengrass#ListNamedShadowsForThing', { thingName: THING, pageSize: 1 });
  assert.equal(listed.shape, 'aws.greengrass#ListNamedShadowsForThingResponse');
  const page = JSON.parse(listed.body);
  assert.deepEqual(page.results, ['big']);
  assert.equal(typeof page.nextToken, 'string');
  assert.ok(Math.abs(page.timestamp - Date.now() / 1000) < 60, 'timestamp in seconds since the epoch');

  store.update(THING, 'page-wire', { state: { reported: { a: 1 } } });
  const deleted = await rawCall('aws.greengrass#DeleteThingShadow', { thingName: THING, shadowName: 'page-wire' });
  assert.equal(deleted.shape, 'aws.greengrass#DeleteThingShadowResponse');
  assert.deepEqual(JSON.parse(deleted.body), { payload: '' }, 'an empty response document');
});
