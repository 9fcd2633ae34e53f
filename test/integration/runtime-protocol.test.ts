import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import mqtt, { type MqttClient } from 'mqtt';
import { eventstream } from 'aws-crt';
import { makeServiceModel } from 'aws-iot-device-sdk-v2/dist/greengrasscoreipc/model_utils';
import { createIpcClient, describeIpcError, GreengrassIpc } from '../../components/shared/ipc';
import { createLogger } from '../../components/shared/logger';
import { startEmbeddedBroker } from '../../runtime/broker';
import { FLAG_CONNECTION_ACCEPTED, FLAG_TERMINATE_STREAM, MessageType, type Frame } from '../../runtime/eventstream-server';
import type { IotBridge } from '../../runtime/iot-bridge';
import type { LocalPubSub } from '../../runtime/local-pubsub';
import { FaultProxy } from '../chaos/fault-proxy';
import { RawIpcPeer } from '../helpers/raw-ipc';
import { DIST, startRuntime, testRecipe, waitFor, type RuntimeFixture } from '../helpers/runtime-fixture';

// Protocol rows of the "Fidelity to the nucleus" table (runtime/README.md): in-order handling per
// connection, malformed requests, a client that vanishes mid-stream, and the bridge's
// maxInFlightPublishes.

const COMPONENT = 'test.Proto';
/** Its Shutdown step takes 1 s, so StopComponent of it is a slow IPC request. */
const SLOW_STOP = 'test.SlowStop';
const SLOW_STOP_MS = 1000;
const accessControl = {
  'aws.greengrass.ipc.mqttproxy': { 'test.Proto:mqttproxy:1': { operations: ['*'], resources: ['*'] } },
  'aws.greengrass.ipc.pubsub': { 'test.Proto:pubsub:1': { operations: ['*'], resources: ['*'] } },
};
const serviceModel = makeServiceModel();

let fixture: RuntimeFixture;

before(async () => {
  fixture = await startRuntime([
    testRecipe(COMPONENT, 'sleep 600', accessControl),
    {
      ...testRecipe(SLOW_STOP, 'sleep 600'),
      Manifests: [{ Platform: { os: 'linux' }, Lifecycle: { Run: 'sleep 600', Shutdown: `sleep ${SLOW_STOP_MS / 1000}` } }],
    },
  ]);
  await waitFor('both components RUNNING', () => {
    const c = fixture.runtime.status().components;
    return c[COMPONENT]?.state === 'RUNNING' && c[SLOW_STOP]?.state === 'RUNNING';
  });
});

after(async () => {
  await fixture?.stop();
});

function cliToken(): string {
  return JSON.parse(readFileSync(join(fixture.runtime.root, 'cli_ipc_info', 'ipc.json'), 'utf8')).token;
}

async function rawPeer(token: string): Promise<RawIpcPeer> {
  const peer = await RawIpcPeer.open(fixture.runtime.socketPath);
  peer.connect(token);
  const ack = await peer.next();
  assert.equal(ack?.type, MessageType.ConnectAck);
  assert.equal(ack?.flags, FLAG_CONNECTION_ACCEPTED);
  return peer;
}

function request(peer: RawIpcPeer, streamId: number, operation: string, payload: unknown): void {
  peer.send({
    type: MessageType.ApplicationMessage,
    streamId,
    headers: { operation, ':content-type': 'application/json' },
    payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
  });
}

async function nextFrame(peer: RawIpcPeer, what: string, timeoutMs = 5000): Promise<Frame> {
  const frame = await peer.next(timeoutMs);
  assert.ok(frame, `no frame for ${what}`);
  return frame;
}

async function connectAs(component: string): Promise<GreengrassIpc> {
  return GreengrassIpc.connect({
    logger: createLogger('protocol-test'),
    socketPath: fixture.runtime.socketPath,
    authToken: fixture.runtime.tokenFor(component)!,
    connectDeadlineMs: 10_000,
  });
}

/**
 * Runtime internals, for what no IPC client can see: whether a subscription of a connection that
 * is gone still exists. LocalRuntime keeps these private; the cast reads them without changing them.
 */
function internals(runtime: RuntimeFixture['runtime']): { pubsub: LocalPubSub; bridge: IotBridge } {
  const r = runtime as unknown as { bridge: IotBridge; server: { handlers: { pubsub: LocalPubSub } } };
  assert.ok(r.bridge && r.server?.handlers?.pubsub, 'runtime internals (bridge, server.handlers.pubsub) are where this test expects them');
  return { pubsub: r.server.handlers.pubsub, bridge: r.bridge };
}

test('requests on one connection are answered in arrival order, even behind a slow StopComponent; another connection is not held up', { timeout: 15_000 }, async () => {
  const peer = await rawPeer(cliToken());
  const other = await rawPeer(cliToken());
  try {
    const started = performance.now();
    // Back to back on one connection: a slow StopComponent, then two requests that alone answer at once.
    request(peer, 1, 'aws.greengrass#StopComponent', { componentName: SLOW_STOP });
    request(peer, 2, 'aws.greengrass#GetConfiguration', { componentName: COMPONENT, keyPath: [] });
    request(peer, 3, 'aws.greengrass#PublishToTopic', { topic: 'proto/order', publishMessage: { jsonMessage: { message: {} } } });
    // Meanwhile another connection's request is answered without waiting for the stop.
    await new Promise((r) => setTimeout(r, 50));
    request(other, 1, 'aws.greengrass#GetConfiguration', { componentName: COMPONENT, keyPath: [] });
    const otherReply = await nextFrame(other, 'the other connection');
    // Read from the runtime, not from reply times: had the other connection waited for the stop,
    // the Shutdown step (SLOW_STOP_MS) would be over and the component no longer STOPPING.
    const slowStopStateAtOtherReply = fixture.runtime.status().components[SLOW_STOP].state;
    assert.equal(otherReply.headers['service-model-type'], 'aws.greengrass#GetConfigurationResponse');

    const replies: Array<Frame & { at: number }> = [];
    for (let i = 0; i < 3; i += 1) {
      const frame = await nextFrame(peer, `reply ${i + 1}`, 10_000);
      replies.push({ ...frame, at: performance.now() });
    }
    assert.deepEqual(replies.map((r) => r.streamId), [1, 2, 3], 'replies in request order');
    assert.equal(replies[0].type, MessageType.ApplicationMessage);
    assert.equal(replies[0].headers['service-model-type'], 'aws.greengrass#StopComponentResponse');
    assert.equal(JSON.parse(replies[0].payload.toString()).stopStatus, 'SUCCEEDED');
    assert.equal(replies[1].headers['service-model-type'], 'aws.greengrass#GetConfigurationResponse');
    // The CLI may not publish: an error, still in its turn.
    assert.equal(replies[2].type, MessageType.ApplicationError);
    assert.equal(replies[2].headers['service-model-type'], 'aws.greengrass#UnauthorizedError');
    assert.ok(replies.every((r) => (r.flags & FLAG_TERMINATE_STREAM) !== 0), 'every reply ends its stream');
    // GetConfiguration waited for the stop (lower bound only: the Shutdown step alone takes SLOW_STOP_MS).
    assert.ok(replies[1].at - started >= SLOW_STOP_MS * 0.9, `GetConfiguration answered after ${Math.round(replies[1].at - started)} ms, before the stop could finish`);
    assert.ok(['RUNNING', 'STOPPING'].includes(slowStopStateAtOtherReply), `the other connection was answered before the slow stop finished (the component was ${slowStopStateAtOtherReply})`);
    assert.notEqual(fixture.runtime.status().components[SLOW_STOP].state, 'RUNNING');
  } finally {
    peer.close();
    other.close();
  }
});

test('through the SDK client: a call made after a slow StopComponent on the same connection completes after it', { timeout: 15_000 }, async () => {
  // The raw test above stopped SLOW_STOP; restart it so the stop below again runs its 1 s Shutdown step.
  const info = JSON.parse(readFileSync(join(fixture.runtime.root, 'cli_ipc_info', 'ipc.json'), 'utf8'));
  const ipc = await GreengrassIpc.connect({ logger: createLogger('protocol-test'), socketPath: info.socketPath, authToken: info.token, connectDeadlineMs: 10_000 });
  try {
    await ipc.restartComponent(SLOW_STOP); // restart includes the 1 s Shutdown step
    const order: string[] = [];
    const stop = ipc.stopComponent(SLOW_STOP).then(() => order.push('stop'));
    const get = ipc.getConfiguration([], COMPONENT).then(() => order.push('get'));
    await Promise.all([stop, get]);
    assert.deepEqual(order, ['stop', 'get']);
  } finally {
    await ipc.close();
  }
});

test('an operation in the SDK model without a handler, and a body that is not JSON, get errors on their streams; the connection stays usable', { timeout: 10_000 }, async () => {
  assert.ok(serviceModel.operations.get('aws.greengrass#GetSecretValue'), 'GetSecretValue is in the SDK model');
  const peer = await rawPeer(fixture.runtime.tokenFor(COMPONENT)!);
  try {
    request(peer, 1, 'aws.greengrass#GetSecretValue', { secretId: 'x' });
    const unsupported = await nextFrame(peer, 'GetSecretValue');
    assert.equal(unsupported.type, MessageType.ApplicationError);
    assert.equal(unsupported.streamId, 1);
    assert.equal(unsupported.flags & FLAG_TERMINATE_STREAM, FLAG_TERMINATE_STREAM);
    assert.equal(unsupported.headers[':content-type'], 'text/plain');
    assert.equal(unsupported.headers['service-model-type'], undefined, 'a plain-text error, not a modelled shape');
    assert.match(unsupported.payload.toString(), /^Operation aws\.greengrass#GetSecretValue is not supported by the local Greengrass runtime$/);

    // GetConfiguration's model has no InvalidArgumentsError, so the runtime sends ServiceError;
    // GetThingShadow's has it.
    const expectShape = (operation: string) =>
      serviceModel.operations.get(operation)!.errorShapes.has('aws.greengrass#InvalidArgumentsError') ? 'aws.greengrass#InvalidArgumentsError' : 'aws.greengrass#ServiceError';
    const bad: Array<[number, string, string, RegExp]> = [
      [2, 'aws.greengrass#GetConfiguration', '{not json', /^request payload: .*JSON/],
      [3, 'aws.greengrass#GetThingShadow', '{"thingName": "test-thing",', /^request payload: .*JSON/],
      [4, 'aws.greengrass#GetThingShadow', '["an", "array"]', /^request payload: request is not a JSON object$/],
    ];
    assert.equal(expectShape('aws.greengrass#GetConfiguration'), 'aws.greengrass#ServiceError');
    assert.equal(expectShape('aws.greengrass#GetThingShadow'), 'aws.greengrass#InvalidArgumentsError');
    for (const [streamId, operation, body, message] of bad) {
      request(peer, streamId, operation, body);
      const reply = await nextFrame(peer, `${operation} with body ${body}`);
      assert.equal(reply.type, MessageType.ApplicationError, `${operation} ${body}`);
      assert.equal(reply.streamId, streamId);
      assert.equal(reply.flags & FLAG_TERMINATE_STREAM, FLAG_TERMINATE_STREAM);
      assert.equal(reply.headers[':content-type'], 'application/json');
      assert.equal(reply.headers['service-model-type'], expectShape(operation), `${operation} ${body}`);
      assert.match(JSON.parse(reply.payload.toString()).message, message);
    }

    // The connection still serves requests and pings.
    request(peer, 5, 'aws.greengrass#GetConfiguration', { keyPath: ['accessControl'] });
    const ok = await nextFrame(peer, 'GetConfiguration after the errors');
    assert.equal(ok.type, MessageType.ApplicationMessage);
    assert.equal(ok.streamId, 5);
    assert.equal(ok.headers['service-model-type'], 'aws.greengrass#GetConfigurationResponse');
    assert.equal(JSON.parse(ok.payload.toString()).componentName, COMPONENT);
    peer.send({ type: MessageType.Ping, streamId: 0 });
    assert.equal((await nextFrame(peer, 'ping')).type, MessageType.PingResponse);
    assert.equal(peer.closed, false);
  } finally {
    peer.close();
  }
});

test('through the SDK client: GetSecretValue is refused and the same client keeps working', { timeout: 10_000 }, async () => {
  const client = createIpcClient(fixture.runtime.socketPath, fixture.runtime.tokenFor(COMPONENT)!);
  await client.connect();
  try {
    await assert.rejects(client.getSecretValue({ secretId: 'x' }), (error) => {
      assert.match(describeIpcError(error), /GetSecretValue is not supported by the local Greengrass runtime/);
      return true;
    });
    const response = await client.getConfiguration({ keyPath: ['accessControl'] });
    assert.equal(response.componentName, COMPONENT);
  } finally {
    await client.close().catch(() => undefined);
  }
});

test('through the SDK client: a Ping on its own eventstream connection gets a PingResponse, and the client keeps working', { timeout: 10_000 }, async () => {
  const client = createIpcClient(fixture.runtime.socketPath, fixture.runtime.tokenFor(COMPONENT)!);
  await client.connect();
  // The SDK's RPC client has no ping call of its own; its aws-crt eventstream connection does
  // (ClientConnection.sendProtocolMessage). Private to the SDK, so the cast only reads it.
  const connection = (client as unknown as { rpcClient: { connection: eventstream.ClientConnection } }).rpcClient.connection;
  assert.ok(connection instanceof eventstream.ClientConnection, 'the SDK client holds an aws-crt eventstream ClientConnection');
  try {
    const pong = new Promise<eventstream.Message>((resolve) => {
      connection.on('protocolMessage', (event) => {
        if (event.message.type === eventstream.MessageType.PingResponse) resolve(event.message);
      });
    });
    await connection.sendProtocolMessage({ message: { type: eventstream.MessageType.Ping, payload: 'are you there' } });
    const response = await pong;
    assert.equal(response.type, eventstream.MessageType.PingResponse);
    const answered = await client.getConfiguration({ keyPath: ['accessControl'] });
    assert.equal(answered.componentName, COMPONENT, 'the connection still serves requests after the ping');
  } finally {
    await client.close().catch(() => undefined);
  }
});

/**
 * A child process with the SDK client: subscribes to local pub/sub and to IoT Core, says "ready",
 * and then waits to be SIGKILLed, so its socket goes away without a TERMINATE_STREAM.
 */
const VANISHING_CLIENT = `
const { GreengrassIpc } = require(${JSON.stringify(join(DIST, 'components/shared/ipc.js'))});
const { createLogger } = require(${JSON.stringify(join(DIST, 'components/shared/logger.js'))});
(async () => {
  const ipc = await GreengrassIpc.connect({ logger: createLogger('vanishing'), socketPath: process.env.SOCKET, authToken: process.env.TOKEN, connectDeadlineMs: 10000 });
  await ipc.subscribeToTopic('proto/vanish/local', (m) => process.stdout.write('local ' + JSON.stringify(m) + '\\n'));
  await ipc.subscribeToIoTCore('proto/vanish/iot', (p) => process.stdout.write('iot ' + p.toString() + '\\n'));
  process.stdout.write('ready\\n');
  setInterval(() => undefined, 60000);
})().catch((e) => { console.error(e); process.exit(1); });
`;

test('a client SIGKILLed mid-stream: its pub/sub and IoT Core subscriptions are cleaned up; other subscribers are unaffected', { timeout: 20_000 }, async () => {
  const { pubsub, bridge } = internals(fixture.runtime);
  const child = spawn(process.execPath, ['-e', VANISHING_CLIENT], {
    env: { ...process.env, SOCKET: fixture.runtime.socketPath, TOKEN: fixture.runtime.tokenFor(COMPONENT)! },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let childOut = '';
  let childErr = '';
  child.stdout.on('data', (d: Buffer) => (childOut += d.toString()));
  child.stderr.on('data', (d: Buffer) => (childErr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const live = await connectAs(COMPONENT);
  const observer: MqttClient = mqtt.connect(fixture.runtime.status().brokerUrl, { clientId: 'proto-observer' });
  try {
    await waitFor('the vanishing client subscribed', () => childOut.includes('ready') || (child.exitCode !== null && assert.fail(`child exited: ${childErr}`)), 10_000, 20);
    const localReceived: unknown[] = [];
    await live.subscribeToTopic('proto/vanish/local', (m) => localReceived.push(m));

    // Before the kill the child's subscriptions are live: a publish reaches both subscribers.
    let delivered = pubsub.counters.delivered;
    await live.publishToTopic('proto/vanish/local', { n: 0 });
    assert.equal(pubsub.counters.delivered - delivered, 2, 'before the kill: the child and the live client');
    await waitFor('the child got message 0', () => childOut.includes('local {"n":0}'), 5000, 20);
    if (!observer.connected) await new Promise<void>((resolve, reject) => observer.once('connect', () => resolve()).once('error', reject));
    await new Promise<void>((resolve, reject) => observer.publish('proto/vanish/iot', 'before', { qos: 1 }, (e) => (e ? reject(e) : resolve())));
    await waitFor('the child got the IoT Core message', () => childOut.includes('iot before'), 5000, 20);

    child.kill('SIGKILL');
    await exited;

    // The runtime notices the closed socket and removes the child's local subscription:
    // a publish is then delivered once, to the live client only.
    const deadline = Date.now() + 5000;
    let lastDelivered = -1;
    for (let n = 1; ; n += 1) {
      delivered = pubsub.counters.delivered;
      await live.publishToTopic('proto/vanish/local', { n });
      lastDelivered = pubsub.counters.delivered - delivered;
      if (lastDelivered === 1) break;
      assert.ok(Date.now() < deadline, `5 s after the kill a publish still reached ${lastDelivered} subscribers`);
      await new Promise((r) => setTimeout(r, 50));
    }
    await waitFor('the live subscriber still receives', () => localReceived.length >= 2, 5000, 20);

    // The bridge dropped the broker-side subscription: the filter has no listener and, once the
    // broker has processed the UNSUBSCRIBE, a broker-side publish no longer reaches the bridge.
    // The live client subscribes afterwards, on the same bridge connection, so when its filter
    // works the broker has handled the earlier UNSUBSCRIBE too.
    const controlReceived: string[] = [];
    await live.subscribeToIoTCore('proto/vanish/control', (payload) => controlReceived.push(payload.toString()));
    for (let i = 0; controlReceived.length === 0; i += 1) {
      assert.ok(i < 100, 'the live IoT Core subscription never received');
      await new Promise<void>((resolve, reject) => observer.publish('proto/vanish/control', `sync-${i}`, { qos: 1 }, (e) => (e ? reject(e) : resolve())));
      await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, 100)); // let late sync copies land before counting
    const receivedBefore = bridge.counters.received;
    const controlBefore = controlReceived.length;
    await new Promise<void>((resolve, reject) => observer.publish('proto/vanish/iot', 'after', { qos: 1 }, (e) => (e ? reject(e) : resolve())));
    await new Promise<void>((resolve, reject) => observer.publish('proto/vanish/control', 'marker', { qos: 1 }, (e) => (e ? reject(e) : resolve())));
    await waitFor('the marker at the live client', () => controlReceived.includes('marker'), 5000, 20);
    // A late copy of a sync message may still land; it reaches the bridge and the live client
    // alike, so it is counted on both sides and the "after" message on neither.
    const controlSince = controlReceived.slice(controlBefore);
    assert.deepEqual(controlSince.filter((m) => !m.startsWith('sync-')), ['marker']);
    assert.equal(bridge.counters.received - receivedBefore, controlSince.length, 'only control messages reached the bridge; proto/vanish/iot is no longer subscribed on the broker');
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    observer.end(true);
    await live.close();
  }
});

/** A client of the broker, subscribed to `filter` at QoS 1, that stamps each message as it arrives. */
async function observe(brokerUrl: string, clientId: string, filter: string): Promise<{ client: MqttClient; arrivals: Array<{ topic: string; payload: Buffer; at: number }> }> {
  const client = mqtt.connect(brokerUrl, { clientId });
  const arrivals: Array<{ topic: string; payload: Buffer; at: number }> = [];
  try {
    await new Promise<void>((resolve, reject) => client.once('connect', () => resolve()).once('error', reject));
    await new Promise<void>((resolve, reject) => client.subscribe(filter, { qos: 1 }, (e) => (e ? reject(e) : resolve())));
  } catch (error) {
    client.end(true);
    throw error;
  }
  client.on('message', (topic, payload) => arrivals.push({ topic, payload, at: performance.now() }));
  return { client, arrivals };
}

/** COMPONENT's own IPC client on a runtime fixture, with its token. */
function componentIpc(runtime: RuntimeFixture, loggerName: string): Promise<GreengrassIpc> {
  return GreengrassIpc.connect({ logger: createLogger(loggerName), socketPath: runtime.runtime.socketPath, authToken: runtime.runtime.tokenFor(COMPONENT)!, connectDeadlineMs: 10_000 });
}

/**
 * Sends `count` QoS 1 PublishToIoTCore through a runtime whose bridge reaches aedes through a proxy
 * with `latencyMs` each way. Returns the broker-side arrival times relative to the moment the first
 * publish was handed over: an instant the test owns, so that lower bounds hold on a loaded machine.
 */
async function arrivalsThroughSlowLink(count: number, latencyMs: number, maxInFlightPublishes?: number): Promise<number[]> {
  const broker = await startEmbeddedBroker();
  const proxy = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: broker.port });
  const { client: observer, arrivals } = await observe(broker.url, `inflight-observer-${maxInFlightPublishes ?? 'default'}`, 'proto/inflight/#');
  let runtime: RuntimeFixture | undefined;
  let ipc: GreengrassIpc | undefined;
  try {
    runtime = await startRuntime([testRecipe(COMPONENT, 'sleep 600', accessControl)], { brokerUrl: proxy.url, ...(maxInFlightPublishes ? { maxInFlightPublishes } : {}) });
    await waitFor('the bridge connected through the proxy', () => proxy.stats().bytesDown > 0, 10_000, 20);
    proxy.setLatency(latencyMs);
    ipc = await componentIpc(runtime, 'inflight-test');
    const handedOver = performance.now();
    for (let n = 0; n < count; n += 1) await ipc.publishToIoTCore(`proto/inflight/${n}`, String(n), { qos: 1 });
    await waitFor(`${count} messages at the broker`, () => arrivals.length >= count, 30_000, 10);
    assert.deepEqual(arrivals.map((a) => Number(a.payload.toString())), [...Array(count).keys()], 'in publish order, each once');
    return arrivals.map((a) => a.at - handedOver);
  } finally {
    await ipc?.close();
    await runtime?.stop();
    observer.end(true);
    await proxy.close();
    await broker.close();
  }
}

const LATENCY_MS = 150;
const ROUND_TRIP_MS = 2 * LATENCY_MS;

test('maxInFlightPublishes 1: each QoS 1 publish waits for the previous PUBACK, one round trip apart', { timeout: 30_000 }, async () => {
  const count = 5;
  const at = await arrivalsThroughSlowLink(count, LATENCY_MS, 1);
  // Message k leaves the runtime only after k-1's PUBACK crossed the proxy back (L) and then
  // crosses it itself (L): it cannot arrive before L + k round trips after the hand-over.
  for (let k = 0; k < count; k += 1) {
    const earliest = LATENCY_MS + k * ROUND_TRIP_MS;
    assert.ok(at[k] >= earliest * 0.9, `message ${k} arrived ${Math.round(at[k])} ms after the hand-over; one in flight at a time, it cannot come before ${earliest} ms`);
  }
});

test('maxInFlightPublishes default 5: five publishes travel together and the sixth waits for a PUBACK', { timeout: 30_000 }, async () => {
  // A long latency, so that "together" has seconds of slack on a loaded machine: one at a time,
  // the fifth could not arrive before L + 4 round trips (9 s); together, it comes at about L.
  const latencyMs = 1000;
  const at = await arrivalsThroughSlowLink(6, latencyMs);
  const sixthEarliest = latencyMs + 2 * latencyMs;
  assert.ok(at[5] >= sixthEarliest * 0.9, `the sixth arrived ${Math.round(at[5])} ms after the hand-over; it needs the first PUBACK back, so not before ${sixthEarliest} ms`);
  assert.ok(at[4] < sixthEarliest, `the fifth arrived ${Math.round(at[4])} ms after the hand-over; travelling with the first four it comes before the first PUBACK could free a slot (${sixthEarliest} ms)`);
});

test('a SubscribeToIoTCore waiting for its SUBACK does not hold back the next request on its connection, as in the nucleus (handleRequestAsync); it fails on its own after the SUBACK timeout', { timeout: 30_000 }, async () => {
  const broker = await startEmbeddedBroker();
  const proxy = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: broker.port });
  let runtime: RuntimeFixture | undefined;
  let ipc: GreengrassIpc | undefined;
  try {
    runtime = await startRuntime([testRecipe(COMPONENT, 'sleep 600', accessControl)], { brokerUrl: proxy.url });
    await waitFor('the bridge connected through the proxy', () => proxy.stats().bytesDown > 0, 10_000, 20);
    ipc = await componentIpc(runtime, 'async-subscribe-test');
    // The TCP connection stays up and nothing crosses it: the SUBACK never comes.
    proxy.blackhole(true);
    const order: string[] = [];
    const subscribe = ipc.subscribeToIoTCore('proto/async/cmd', () => undefined).then(
      () => order.push('subscribe answered'),
      (error: unknown) => order.push(`subscribe failed: ${describeIpcError(error)}`),
    );
    const publish = ipc.publishToIoTCore('proto/async/data', 'x', { qos: 1 }).then(() => order.push('publish answered'));
    const get = ipc.getConfiguration([], COMPONENT).then(() => order.push('getConfiguration answered'));
    await Promise.all([subscribe, publish, get]);
    assert.deepEqual(order.slice(0, 2), ['publish answered', 'getConfiguration answered'], JSON.stringify(order));
    assert.match(order[2], /^subscribe failed: .*SUBACK/, JSON.stringify(order));
  } finally {
    await ipc?.close();
    await runtime?.stop();
    await proxy.close();
    await broker.close();
  }
});

test('the IoT connection is paced as the nucleus paces it: 100 publishes/s and 512 KiB/s of payload, the rest waiting in the spooler', { timeout: 30_000 }, async () => {
  const broker = await startEmbeddedBroker();
  const { client: observer, arrivals } = await observe(broker.url, 'pacing-observer', 'proto/pace/#');
  let runtime: RuntimeFixture | undefined;
  let ipc: GreengrassIpc | undefined;
  try {
    runtime = await startRuntime([testRecipe(COMPONENT, 'sleep 600', accessControl)], { brokerUrl: broker.url });
    ipc = await componentIpc(runtime, 'pacing-test');
    await waitFor('the bridge connected', () => (runtime!.runtime as unknown as { bridge: IotBridge }).bridge.connected, 10_000, 20);

    // Spreads are measured from the moment the publishes are handed over, not from the first
    // arrival: on a loaded machine the burst that goes at once reaches the observer late, which
    // would shorten an arrival-to-arrival spread, while the pace can only make the last one later.
    // 251 small publishes handed over at once. The bucket has stored up to one second (100) since
    // the runtime started; those go at once, and the other 150 leave 10 ms apart.
    const countHandedOver = performance.now();
    await Promise.all(Array.from({ length: 251 }, (_, n) => ipc!.publishToIoTCore(`proto/pace/count/${n}`, 'x', { qos: 1 })));
    await waitFor('251 messages at the broker', () => arrivals.filter((a) => a.topic.startsWith('proto/pace/count/')).length >= 251, 15_000, 10);
    const counted = arrivals.filter((a) => a.topic.startsWith('proto/pace/count/'));
    const spread = counted[250].at - countHandedOver;
    assert.ok(spread >= 1500 * 0.9, `the last of 251 publishes arrived ${Math.round(spread)} ms after they were handed over; at 100/s after a stored second of 100 that is at least 1500 ms`);
    assert.ok(runtime.runtime.status().spooler.pacedWaits > 0, 'the pace held messages in the spooler');

    // Eight 100 KiB payloads after a second idle: one second of budget (512 KiB) is stored, as in
    // the nucleus's limiter, so the first five go at once and the rest wait for the budget; the
    // eighth leaves once 700 KiB have been paid for, (700 - 512) / 512 s = 367 ms after the first.
    await new Promise((r) => setTimeout(r, 1100));
    const big = Buffer.alloc(100 * 1024, 7);
    const bytesHandedOver = performance.now();
    await Promise.all(Array.from({ length: 8 }, (_, n) => ipc!.publishToIoTCore(`proto/pace/bytes/${n}`, big, { qos: 1 })));
    await waitFor('the eight large messages at the broker', () => arrivals.filter((a) => a.topic.startsWith('proto/pace/bytes/')).length >= 8, 15_000, 10);
    const large = arrivals.filter((a) => a.topic.startsWith('proto/pace/bytes/'));
    const largeSpread = large[7].at - bytesHandedOver;
    assert.ok(largeSpread >= 367 * 0.9, `the last of eight 100 KiB messages arrived ${Math.round(largeSpread)} ms after they were handed over; at 512 KiB/s with one second stored, at least 367 ms`);
  } finally {
    await ipc?.close();
    await runtime?.stop();
    observer.end(true);
    await broker.close();
  }
});
