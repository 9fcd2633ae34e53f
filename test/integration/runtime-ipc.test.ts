import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createIpcClient, GreengrassIpc, classifyIpcError } from '../../components/shared/ipc';
import { createLogger } from '../../components/shared/logger';
import { FLAG_CONNECTION_ACCEPTED, FLAG_TERMINATE_STREAM, MessageType, encodeFrame } from '../../runtime/eventstream-server';
import { RawIpcPeer } from '../helpers/raw-ipc';
import { peerRun, readJsonIfExists, readJsonLines, startRuntime, testRecipe, waitFor, type RuntimeFixture } from '../helpers/runtime-fixture';

const pubsub = (id: string, operations: string[], resources: string[]) => ({
  'aws.greengrass.ipc.pubsub': { [id]: { policyDescription: 'test', operations, resources } },
});

let fixture: RuntimeFixture;

before(async () => {
  fixture = await startRuntime([
    testRecipe('test.Listener', peerRun('subscribe test/chat'), pubsub('test.Listener:pubsub:1', ['aws.greengrass#SubscribeToTopic'], ['test/chat'])),
    testRecipe(
      'test.Talker',
      // Waits for the listener's subscription; {test.Listener:work:path} exercises cross-component interpolation.
      `while [ ! -f "{test.Listener:work:path}/subscribed" ]; do sleep 0.1; done; ${peerRun('publish test/chat 5')}`,
      pubsub('test.Talker:pubsub:1', ['aws.greengrass#PublishToTopic'], ['test/chat']),
      { ComponentDependencies: { 'test.Listener': { DependencyType: 'SOFT' } } },
    ),
    testRecipe('test.Intruder', peerRun('publish test/chat 1'), pubsub('test.Intruder:pubsub:1', ['aws.greengrass#PublishToTopic'], ['test/allowed-only'])),
  ]);
});

after(async () => {
  await fixture?.stop();
});

function cliInfo(): { socketPath: string; token: string } {
  return JSON.parse(readFileSync(join(fixture.runtime.root, 'cli_ipc_info', 'ipc.json'), 'utf8'));
}

test('two SDK IPC clients in separate processes exchange messages through the runtime', async () => {
  const received = await waitFor('5 messages at the listener', () => {
    const lines = readJsonLines<{ topic: string; message: { n: number; from: number } }>(join(fixture.workOf('test.Listener'), 'received.jsonl'));
    return lines.length >= 5 ? lines : undefined;
  });
  assert.deepEqual(received.map((r) => r.message.n), [0, 1, 2, 3, 4]);
  assert.ok(received.every((r) => r.topic === 'test/chat'));
  const status = fixture.runtime.status();
  const talkerPid = received[0].message.from;
  assert.notEqual(talkerPid, process.pid, 'the publisher is another process');
  assert.equal(status.components['test.Listener'].state, 'RUNNING');
  const results = await waitFor('talker results', () => readJsonIfExists<Array<{ ok: boolean }>>(join(fixture.workOf('test.Talker'), 'publish-result.json')));
  assert.deepEqual(results, [{ ok: true }, { ok: true }, { ok: true }, { ok: true }, { ok: true }]);
});

test('a publish to a topic outside the policy gets UnauthorizedError and is not delivered', async () => {
  const results = await waitFor('intruder results', () =>
    readJsonIfExists<Array<{ ok: boolean; kind: string; error: string }>>(join(fixture.workOf('test.Intruder'), 'publish-result.json')),
  );
  assert.equal(results.length, 1);
  assert.equal(results[0].ok, false);
  assert.equal(results[0].kind, 'unauthorized');
  assert.match(results[0].error, /test\.Intruder is not authorized to perform aws\.greengrass\.ipc\.pubsub:aws\.greengrass#PublishToTopic on resource test\/chat/);
  const received = readJsonLines<{ message: { from: number } }>(join(fixture.workOf('test.Listener'), 'received.jsonl'));
  assert.ok(received.every((r) => r.message.from === received[0].message.from), 'only the talker reached the listener');
});

test('the error frame names the UnauthorizedError shape, as the nucleus sends it', async () => {
  const peer = await RawIpcPeer.open(fixture.runtime.socketPath);
  peer.connect(cliInfo().token);
  const ack = await peer.next();
  assert.equal(ack?.type, MessageType.ConnectAck);
  assert.equal(ack?.flags, FLAG_CONNECTION_ACCEPTED);
  peer.send({
    type: MessageType.ApplicationMessage,
    streamId: 1,
    headers: { operation: 'aws.greengrass#PublishToTopic', ':content-type': 'application/json' },
    payload: JSON.stringify({ topic: 'test/chat', publishMessage: { jsonMessage: { message: {} } } }),
  });
  const reply = await peer.next();
  assert.equal(reply?.type, MessageType.ApplicationError);
  assert.equal(reply?.streamId, 1);
  assert.equal(reply?.flags, FLAG_TERMINATE_STREAM);
  assert.equal(reply?.headers['service-model-type'], 'aws.greengrass#UnauthorizedError');
  assert.match(JSON.parse(reply!.payload.toString()).message, /not authorized/);
  peer.close();
});

test('a connect with a wrong token is rejected, for the SDK client and on the wire', async () => {
  const client = createIpcClient(fixture.runtime.socketPath, 'not-a-token');
  await assert.rejects(client.connect());
  await client.close().catch(() => undefined);

  const peer = await RawIpcPeer.open(fixture.runtime.socketPath);
  peer.connect('not-a-token');
  const ack = await peer.next();
  assert.equal(ack?.type, MessageType.ConnectAck);
  assert.equal(ack?.flags, 0, 'CONNECT_ACK without the accepted flag');
  assert.ok(await peer.waitClosed(), 'the runtime closes a refused connection');
});

test('a frame with a bad CRC closes only that connection', async () => {
  const healthy = await GreengrassIpc.connect({ logger: createLogger('test'), ...cliSocket() });
  const peer = await RawIpcPeer.open(fixture.runtime.socketPath);
  peer.connect(cliInfo().token);
  assert.equal((await peer.next())?.flags, FLAG_CONNECTION_ACCEPTED);
  const frame = encodeFrame({ type: MessageType.Ping, streamId: 0 });
  frame[frame.length - 1] ^= 0xff; // break the message CRC
  peer.sendBytes(frame);
  const reply = await peer.next();
  assert.equal(reply?.type, MessageType.ProtocolError);
  assert.match(reply!.payload.toString(), /bad frame/);
  assert.ok(await peer.waitClosed());
  // The other connection still works: GetConfiguration of a component answers.
  const config = await healthy.getConfiguration([], 'test.Listener');
  assert.ok('accessControl' in config);
  await healthy.close();
});

test('an unknown operation gets an error on its stream and the connection stays usable', async () => {
  const peer = await RawIpcPeer.open(fixture.runtime.socketPath);
  peer.connect(cliInfo().token);
  assert.equal((await peer.next())?.flags, FLAG_CONNECTION_ACCEPTED);
  peer.send({ type: MessageType.ApplicationMessage, streamId: 1, headers: { operation: 'aws.greengrass#NoSuchThing' }, payload: '{}' });
  const reply = await peer.next();
  assert.equal(reply?.type, MessageType.ApplicationError);
  assert.equal(reply?.headers[':content-type'], 'text/plain');
  assert.match(reply!.payload.toString(), /NoSuchThing is not supported/);
  peer.send({ type: MessageType.Ping, streamId: 0 });
  assert.equal((await peer.next())?.type, MessageType.PingResponse);
  peer.close();
});

test('the SDK client sees an unauthorized call as UnauthorizedError through classifyIpcError', async () => {
  const ipc = await GreengrassIpc.connect({ logger: createLogger('test'), ...cliSocket() });
  await assert.rejects(ipc.publishToTopic('test/chat', { x: 1 }), (error) => classifyIpcError(error) === 'unauthorized');
  await ipc.close();
});

function cliSocket(): { socketPath: string; authToken: string } {
  const info = cliInfo();
  return { socketPath: info.socketPath, authToken: info.token };
}
