import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { checkEnvelope, checkLoss, isGzip, parseEnvelopePayload, type Envelope, type LossReport } from '../../components/shared/envelope';
import { DeploymentHooks } from '../../components/shared/deployment-hooks';
import { GreengrassIpc } from '../../components/shared/ipc';
import { createLogger } from '../../components/shared/logger';
import { monotonicMs } from '../../components/shared/monotonic';
import { StreamStore } from '../../components/shared/store';
import { IpcTransport } from '../../components/mqtt-publisher/ipc-transport';
import { Publisher, type PublisherConfig } from '../../components/mqtt-publisher/publisher';
import { startEmbeddedBroker } from '../../runtime/broker';
import { FaultProxy } from '../chaos/fault-proxy';
import { cliClient, deployAndWait, peerRun, recipeFolder, startRuntime, tempRoot, testRecipe, waitFor, type RuntimeFixture } from '../helpers/runtime-fixture';
import { freePort } from '../helpers/mosquitto';

const THING = 'test-thing';
const PUBLISHER = 'test.Publisher';
const logger = createLogger('publisher-test');

const accessControl = {
  'aws.greengrass.ipc.mqttproxy': {
    'test.Publisher:mqttproxy:1': { operations: ['aws.greengrass#PublishToIoTCore'], resources: ['dt/elevator/{iot:thingName}/*'] },
    'test.Publisher:mqttproxy:2': { operations: ['aws.greengrass#SubscribeToIoTCore'], resources: ['cmd/elevator/{iot:thingName}/ack', 'cmd/elevator/{iot:thingName}/backfill'] },
  },
};

const config: PublisherConfig = {
  maxEnvelopeBytes: 120_000,
  maxRecordsPerEnvelope: 10,
  idleIntervalMs: 20,
  resendAfterMs: 60_000,
  backpressureBaseMs: 50,
  backpressureMaxMs: 400,
  maxBackfillRecords: 1000,
  reportRepeatMs: 60_000,
};

/** The publisher in this process, acting as test.Publisher with the token the runtime issued it. */
async function publisherOn(fixture: RuntimeFixture, store: StreamStore, overrides: Partial<PublisherConfig> = {}) {
  const ipc = await GreengrassIpc.connect({ logger, socketPath: fixture.runtime.socketPath, authToken: fixture.runtime.tokenFor(PUBLISHER)!, connectDeadlineMs: 10_000 });
  const publisher = new Publisher(store, new IpcTransport(ipc), THING, { ...config, ...overrides }, logger);
  await publisher.start();
  return { ipc, publisher, stop: async () => { await publisher.stop(); await ipc.close(); } };
}

/** The cloud side: a real MQTT client on the broker, collecting envelopes and sending acks. */
async function cloudClient(url: string): Promise<{ client: MqttClient; envelopes: Envelope[]; losses: LossReport[]; payloads: Buffer[] }> {
  const client = mqtt.connect(url, { clientId: `cloud-${process.pid}-${Date.now()}` });
  const envelopes: Envelope[] = [];
  const payloads: Buffer[] = [];
  const losses: LossReport[] = [];
  await new Promise<void>((resolve) => client.once('connect', () => resolve()));
  await client.subscribeAsync(`dt/elevator/${THING}/+`, { qos: 1 });
  client.on('message', (topic, payload) => {
    if (topic.endsWith('/loss')) {
      const loss = checkLoss(JSON.parse(payload.toString()));
      assert.ok(loss.ok, `loss report passes its schema: ${loss.ok ? '' : loss.reason}`);
      losses.push(loss.value);
      return;
    }
    const parsed = parseEnvelopePayload(payload);
    assert.ok(parsed.ok, parsed.ok ? '' : parsed.reason);
    const checked = checkEnvelope(parsed.value);
    payloads.push(payload);
    assert.ok(checked.ok, `envelope passes every check: ${checked.ok ? '' : checked.reason}`);
    envelopes.push(checked.value);
  });
  return { client, envelopes, losses, payloads };
}

function backfill(client: MqttClient, body: Record<string, unknown>): Promise<unknown> {
  return client.publishAsync(
    `cmd/elevator/${THING}/backfill`,
    JSON.stringify({ schema: 'elevator.backfill/1', requestId: `r-${Math.random()}`, device: THING, issuedAt: new Date().toISOString(), ...body }),
    { qos: 1 },
  );
}

async function seed(store: StreamStore, stream: string, count: number, priority = 2): Promise<void> {
  await store.append(Array.from({ length: count }, (_, i) => ({ stream, priority, time: Date.now(), mono: i, data: { i } })));
}

function seqsOf(envelopes: Envelope[], stream: string): number[] {
  return envelopes.filter((e) => e.stream === stream).flatMap((e) => e.records.map((r) => r.seq));
}

function ack(client: MqttClient, body: Record<string, unknown>): Promise<unknown> {
  return client.publishAsync(`cmd/elevator/${THING}/ack`, JSON.stringify({ schema: 'elevator.ack/1', gaps: [], issuedAt: new Date().toISOString(), ...body }), { qos: 1 });
}

test('envelopes reach the broker through IPC, and only the cloud ack deletes records', { timeout: 60_000 }, async () => {
  const fixture = await startRuntime([testRecipe(PUBLISHER, 'sleep 600', accessControl)], { thingName: THING });
  const store = await StreamStore.open(join(tempRoot('ps-'), 'store.sqlite'), { owner: true, logger });
  const cloud = await cloudClient(fixture.runtime.status().brokerUrl);
  const { publisher, stop } = await publisherOn(fixture, store);
  try {
    await seed(store, 'door-cycle', 30);
    await seed(store, 'motor', 10, 1);
    await waitFor('all 40 records at the cloud', () => seqsOf(cloud.envelopes, 'door-cycle').length >= 30 && seqsOf(cloud.envelopes, 'motor').length >= 10);
    assert.deepEqual(seqsOf(cloud.envelopes, 'door-cycle'), Array.from({ length: 30 }, (_, i) => i + 1));
    assert.ok(cloud.envelopes.every((e) => e.count <= 10 && e.epoch === store.epoch && e.device === THING));
    let stats = await store.stats();
    assert.equal(stats.backlogRecords, 40, 'published is not deleted: nothing is acked yet');

    await ack(cloud.client, { stream: 'door-cycle', epoch: store.epoch, watermark: 30 });
    await waitFor('door-cycle acked', () => publisher.metrics.acksApplied >= 1);
    stats = await store.stats();
    assert.equal(stats.streams.find((s) => s.stream === 'door-cycle')?.backlogRecords, 0);
    assert.equal(stats.streams.find((s) => s.stream === 'motor')?.backlogRecords, 10);

    await ack(cloud.client, { stream: 'motor', epoch: '00000000-0000-0000-0000-000000000000', watermark: 10 });
    await cloud.client.publishAsync(`cmd/elevator/${THING}/ack`, '{not json', { qos: 1 });
    await waitFor('ignored and invalid acks counted', () => publisher.metrics.acksIgnored === 1 && publisher.metrics.invalidAcks.json === 1);
    assert.equal((await store.stats()).streams.find((s) => s.stream === 'motor')?.backlogRecords, 10, 'an ack for another epoch deletes nothing');

    // Gaps in an ack are information only: nothing is resent for them.
    const before = cloud.envelopes.length;
    await ack(cloud.client, { stream: 'motor', epoch: store.epoch, watermark: 5, gaps: [[8, 10]] });
    await waitFor('ack applied', () => publisher.metrics.acksApplied === 2);
    assert.equal((await store.stats()).streams.find((s) => s.stream === 'motor')?.backlogRecords, 5);
    // A backfill request resends what is retained and reports what is gone, and why.
    await backfill(cloud.client, { stream: 'motor', epoch: store.epoch, ranges: [[3, 4], [8, 10], [11, 12]] });
    // 8..10 were sent in the envelope 1-10, of which 6..10 remain: they go out together (the
    // envelope cannot keep its first range, since the ack deleted 1..5).
    await waitFor('the retained part resent', () => seqsOf(cloud.envelopes.slice(before), 'motor').join() === '6,7,8,9,10');
    await waitFor('two loss reports', () => cloud.losses.length === 2);
    const byReason = Object.fromEntries(cloud.losses.map((l) => [l.reason, l.ranges]));
    assert.deepEqual(byReason, { 'deleted-after-ack': [[3, 4]], 'not-sampled': [[11, 12]] });
    assert.ok(cloud.losses.every((l) => l.epoch === store.epoch && l.stream === 'motor' && l.requestId));
    assert.equal(publisher.backfill.metrics.recordsRequeuedByBackfill, 3);

    // Malformed, huge, foreign and stale requests are refused with a reason, and touch nothing.
    await cloud.client.publishAsync(`cmd/elevator/${THING}/backfill`, '[]', { qos: 1 });
    await backfill(cloud.client, { stream: 'motor', epoch: store.epoch, ranges: [[1, 5000]] });
    await backfill(cloud.client, { stream: 'motor', epoch: store.epoch, ranges: [[6, 7]], device: 'another-thing' });
    await backfill(cloud.client, { stream: 'motor', epoch: '00000000-0000-0000-0000-000000000000', ranges: [[6, 7]] });
    await waitFor('four rejections', () => Object.values(publisher.backfill.metrics.backfillRejected).reduce((a, b) => a + b, 0) === 4);
    assert.deepEqual(publisher.backfill.metrics.backfillRejected, { schema: 1, 'too-large': 1, 'mis-addressed': 1, epoch: 1 });
    assert.equal(publisher.backfill.metrics.backfillRequests, 1);
  } finally {
    await stop();
    cloud.client.end(true);
    await store.close();
    await fixture.stop();
  }
});

test('a full nucleus spooler is back-pressure: nothing is marked sent that was refused, and all of it flows once the broker is back', { timeout: 60_000 }, async () => {
  const port = await freePort();
  // The broker is down: the runtime's spooler fills up after a few envelopes.
  const fixture = await startRuntime([testRecipe(PUBLISHER, 'sleep 600', accessControl)], {
    thingName: THING,
    brokerUrl: `mqtt://127.0.0.1:${port}`,
    spoolerMaxBytes: 8_000,
  });
  const store = await StreamStore.open(join(tempRoot('pb-'), 'store.sqlite'), { owner: true, logger });
  // Envelopes the bridge delivers before the cloud client subscribes are lost at the broker;
  // a short resend time lets the publisher cover them, as it would in the field.
  const { publisher, stop } = await publisherOn(fixture, store, { resendAfterMs: 2_000 });
  try {
    await seed(store, 'run', 100);
    await waitFor('back-pressure', () => publisher.metrics.backpressureEvents >= 2);
    const spooled = fixture.runtime.status().spooler;
    assert.ok(spooled.rejected >= 1, 'the spooler refused at least one publish');
    assert.ok(spooled.bytes <= 8_000);
    const stats = await store.stats();
    const runStats = stats.streams.find((s) => s.stream === 'run')!;
    assert.equal(runStats.backlogRecords, 100, 'nothing is deleted without an ack');
    assert.equal(100 - runStats.unsentRecords, publisher.metrics.recordsSent - publisher.metrics.recordsResent, 'exactly the spooled records are marked sent');
    assert.ok(runStats.unsentRecords > 0, 'refused records stay unsent');

    const broker = await startEmbeddedBroker(port);
    const cloud = await cloudClient(broker.url);
    try {
      await waitFor('every record at the cloud once the broker is up', () => new Set(seqsOf(cloud.envelopes, 'run')).size === 100, 30_000);
    } finally {
      cloud.client.end(true);
      await fixture.stop();
      await broker.close();
    }
  } finally {
    await stop();
    await store.close();
  }
});

test('records dropped by retention are reported to the cloud as exact ranges with their reason, once', { timeout: 60_000 }, async () => {
  const fixture = await startRuntime([testRecipe(PUBLISHER, 'sleep 600', accessControl)], { thingName: THING });
  const store = await StreamStore.open(join(tempRoot('pr-'), 'store.sqlite'), { owner: true, logger });
  const cloud = await cloudClient(fixture.runtime.status().brokerUrl);
  try {
    await seed(store, 'motor', 30, 1);
    await seed(store, 'run', 5, 2);
    // A byte cap that holds about ten records: the oldest motor metrics go first, events stay.
    const perRecord = Buffer.byteLength(JSON.stringify({ i: 10 }));
    const result = await store.enforceRetention({ maxBytes: perRecord * 10 });
    assert.ok(result.dropped > 0);
    const { publisher, stop } = await publisherOn(fixture, store);
    try {
      await waitFor('a loss report', () => cloud.losses.length >= 1);
      const reported = cloud.losses.flatMap((l) => l.ranges.map(([from, to]) => ({ stream: l.stream, reason: l.reason, from, to })));
      assert.ok(reported.every((r) => r.stream === 'motor' && r.reason === 'byte-cap'), JSON.stringify(reported));
      const count = reported.reduce((sum, r) => sum + r.to - r.from + 1, 0);
      assert.equal(count, result.dropped, 'every dropped record is in a reported range');
      assert.deepEqual(reported[0].from, 1, 'the oldest went first');
      // Marked reported after the report's publish is answered, which can be after the cloud has it.
      await waitFor('the drops marked reported', async () => (await store.unreportedDrops(10)).length === 0);
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(cloud.losses.length, 1, 'reported once');
      assert.equal(publisher.losses.metrics.recordsReportedLost['byte-cap'], result.dropped);
    } finally {
      await stop();
    }
  } finally {
    cloud.client.end(true);
    await store.close();
    await fixture.stop();
  }
});

test('the publisher holds a component update while records await the cloud ack, for a bounded time, and not once they are acknowledged', { timeout: 60_000 }, async () => {
  const other = (label: string, version: string) => testRecipe('test.Other', peerRun(`starts ${label}`), {}, { ComponentVersion: version });
  const fixture = await startRuntime([testRecipe(PUBLISHER, 'sleep 600', accessControl), other('v1', '1.0.0')], { thingName: THING, deployments: { settleMs: 300 } });
  const store = await StreamStore.open(join(tempRoot('ps-'), 'store.sqlite'), { owner: true, logger });
  const cloud = await cloudClient(fixture.runtime.status().brokerUrl);
  const { ipc, publisher, stop } = await publisherOn(fixture, store);
  const budgetMs = 3000;
  const hooks = new DeploymentHooks<PublisherConfig>({
    ipc,
    logger,
    schema: { type: 'object' },
    current: () => config,
    onValidConfiguration: async () => undefined,
    component: { deferUpdate: () => publisher.updateDeferral() },
    maxTotalDeferMs: budgetMs,
  });
  await hooks.watchUpdates();
  const cli = await cliClient(fixture);
  try {
    await seed(store, 'door-cycle', 5);
    await waitFor('5 records at the cloud', () => seqsOf(cloud.envelopes, 'door-cycle').length >= 5);
    // Marked sent after the publish is answered, which can be after the cloud has the envelope.
    await waitFor('the envelope marked sent', () => publisher.metrics.envelopesSent >= 1);
    const inFlight = await publisher.updateDeferral();
    assert.ok(inFlight.ms > 0);
    assert.match(inFlight.reason, /5 records in flight, waiting for the cloud's acks/);
    await waitFor('test.Other up', () => existsSync(join(fixture.workOf('test.Other'), 'subscribed')));

    const started = Date.now();
    const held = await deployAndWait(cli, { recipeDirectoryPath: recipeFolder(fixture, 'v2', [other('v2', '1.1.0')]), rootComponentVersionsToAdd: { 'test.Other': '1.1.0' } });
    const heldMs = Date.now() - started;
    assert.equal(held.status, 'SUCCEEDED', 'the deferral is bounded: the update goes ahead once the budget is spent');
    assert.ok(heldMs >= budgetMs - 100, `the update waited out the ${budgetMs} ms budget (${heldMs} ms)`);
    assert.equal(hooks.metrics.updatesDeferred, 2, 'a 2 s deferral, then the last 1 s of the budget, then "ready"');

    await ack(cloud.client, { stream: 'door-cycle', epoch: store.epoch, watermark: 5 });
    await waitFor('acked', () => publisher.metrics.acksApplied >= 1);
    assert.deepEqual(await publisher.updateDeferral(), { ms: 0, reason: '' }, 'nothing in flight');
    const free = await deployAndWait(cli, { recipeDirectoryPath: recipeFolder(fixture, 'v3', [other('v3', '1.2.0')]), rootComponentVersionsToAdd: { 'test.Other': '1.2.0' } });
    assert.equal(free.status, 'SUCCEEDED');
    assert.equal(hooks.metrics.updatesDeferred, 2, 'not deferred again');
  } finally {
    await cli.close();
    await stop();
    cloud.client.end(true);
    await store.close();
    await fixture.stop();
  }
});

test('minEnvelopeIntervalMs: fresh records of a slow stream wait and go out together; a full envelope goes at once', { timeout: 60_000 }, async () => {
  const fixture = await startRuntime([testRecipe(PUBLISHER, 'sleep 600', accessControl)], { thingName: THING });
  const store = await StreamStore.open(join(tempRoot('ps-'), 'store.sqlite'), { owner: true, logger });
  const cloud = await cloudClient(fixture.runtime.status().brokerUrl);
  // A long interval, so that both "waits" and "does not wait" have seconds of slack on a loaded machine.
  const intervalMs = 5000;
  const { stop } = await publisherOn(fixture, store, { minEnvelopeIntervalMs: intervalMs, maxRecordsPerEnvelope: 10 });
  try {
    // Stamped now on the monotonic clock, as the acquisition stamps them.
    const append = (count: number) =>
      store.append(Array.from({ length: count }, (_, i) => ({ stream: 'motor', priority: 1, time: Date.now(), mono: monotonicMs(), data: { i } })));
    const started = Date.now();
    await append(1);
    await new Promise((r) => setTimeout(r, 300));
    await append(2);
    await new Promise((r) => setTimeout(r, 600));
    if (Date.now() - started < intervalMs - 500) assert.equal(cloud.envelopes.length, 0, 'a partly filled envelope of fresh records waits');
    await waitFor('the waiting records', () => cloud.envelopes.length >= 1, 20_000);
    assert.ok(Date.now() - started >= intervalMs - 100, 'not before the oldest record is minEnvelopeIntervalMs old');
    assert.deepEqual(seqsOf(cloud.envelopes, 'motor'), [1, 2, 3], 'three records, one envelope');
    assert.equal(cloud.envelopes.length, 1);

    const before = Date.now();
    await append(10);
    await waitFor('the full envelope', () => seqsOf(cloud.envelopes, 'motor').length >= 13, 10_000);
    assert.ok(Date.now() - before < intervalMs - 1000, `a full envelope does not wait (${Date.now() - before} ms)`);
    assert.equal(cloud.envelopes[1].count, 10);
  } finally {
    await stop();
    cloud.client.end(true);
    await store.close();
    await fixture.stop();
  }
});

test('a record sent before goes out again in the envelope it was first sent in: after a restart, after the resend timeout, and when a backfill asks for part of it', { timeout: 60_000 }, async () => {
  const fixture = await startRuntime([testRecipe(PUBLISHER, 'sleep 600', accessControl)], { thingName: THING });
  const store = await StreamStore.open(join(tempRoot('ps-'), 'store.sqlite'), { owner: true, logger });
  const cloud = await cloudClient(fixture.runtime.status().brokerUrl);
  const ranges = () => cloud.envelopes.map((e) => `${e.seqFrom}-${e.seqTo}`);
  let running = await publisherOn(fixture, store);
  try {
    await seed(store, 'run', 3);
    await waitFor('first envelope', () => cloud.envelopes.length === 1);
    await seed(store, 'run', 4);
    await waitFor('second envelope', () => cloud.envelopes.length === 2);
    assert.deepEqual(ranges(), ['1-3', '4-7']);

    // A restart makes all seven pending at once; without recorded boundaries they would go out as 1-7.
    await running.stop();
    running = await publisherOn(fixture, store);
    await waitFor('resent after the restart', () => cloud.envelopes.length === 4);
    assert.deepEqual(ranges().slice(2).sort(), ['1-3', '4-7']);

    // A backfill of seq 5 alone brings back its whole envelope, so the cloud's key for it stays 4-7.
    await backfill(cloud.client, { stream: 'run', epoch: store.epoch, ranges: [[5, 5]] });
    await waitFor('backfill served', () => cloud.envelopes.length === 5);
    assert.equal(ranges()[4], '4-7');

    // Fresh records still pack freely; the resend timeout sends each envelope as it was.
    await running.stop();
    running = await publisherOn(fixture, store, { resendAfterMs: 500 });
    await seed(store, 'run', 2);
    await waitFor('resends by timeout', () => ranges().filter((r) => r === '8-9').length >= 2, 20_000);
    const after = ranges().slice(5);
    assert.ok(after.every((r) => ['1-3', '4-7', '8-9'].includes(r)), `only recorded ranges go out again: ${after.join(', ')}`);
    assert.equal(running.publisher.metrics.envelopesRepacked, 0);

    // Once retention removes a record of a recorded envelope, that envelope cannot go out as it was: counted and repacked.
    await ack(cloud.client, { stream: 'run', epoch: store.epoch, watermark: 3 });
    await waitFor('ack applied', () => running.publisher.metrics.acksApplied === 1);
    const total = (await store.stats()).backlogBytes;
    await store.enforceRetention({ maxBytes: total - 1, now: Date.now() });
    await waitFor('the envelope that lost seq 4 is repacked', () => running.publisher.metrics.envelopesRepacked >= 1, 20_000);
    await waitFor('5-7 resent', () => ranges().includes('5-7'), 20_000);
  } finally {
    await running.stop();
    cloud.client.end(true);
    await store.close();
    await fixture.stop();
  }
});

test('compression: a backlog goes out gzip-compressed, many more records per envelope than maxEnvelopeBytes of JSON holds, every payload within the limit', { timeout: 60_000 }, async () => {
  const fixture = await startRuntime([testRecipe(PUBLISHER, 'sleep 600', accessControl)], { thingName: THING });
  const store = await StreamStore.open(join(tempRoot('ps-'), 'store.sqlite'), { owner: true, logger });
  const cloud = await cloudClient(fixture.runtime.status().brokerUrl);
  const maxEnvelopeBytes = 8192;
  await store.append(
    Array.from({ length: 3000 }, (_, i) => ({ stream: 'motor', priority: 1, time: Date.now(), mono: i, data: { i, rpm: 1400 + (i % 7), note: 'steady state motor sample' } })),
  );
  const { publisher, stop } = await publisherOn(fixture, store, { maxEnvelopeBytes, maxRecordsPerEnvelope: 2000 });
  try {
    await waitFor('all 3000 records at the cloud', () => seqsOf(cloud.envelopes, 'motor').length >= 3000, 30_000);
    assert.deepEqual(seqsOf(cloud.envelopes, 'motor'), Array.from({ length: 3000 }, (_, i) => i + 1), 'each record once, in order');
    assert.ok(cloud.payloads.every((p) => p.length <= maxEnvelopeBytes), `largest payload ${Math.max(...cloud.payloads.map((p) => p.length))} bytes`);
    assert.ok(cloud.payloads.every(isGzip), 'every envelope of the backlog is compressed');
    const jsonPerEnvelope = Math.min(...cloud.envelopes.map((e) => JSON.stringify(e).length));
    assert.ok(jsonPerEnvelope > maxEnvelopeBytes, `an envelope holds more JSON (${jsonPerEnvelope} bytes) than maxEnvelopeBytes`);
    // The publisher counts an envelope once its publish is answered and markSent is done, which can
    // be after the cloud has it.
    await waitFor('the publisher counted every envelope it sent', () => publisher.metrics.envelopesSent >= cloud.envelopes.length, 10_000);
    assert.equal(publisher.metrics.envelopesCompressed, cloud.envelopes.length);
  } finally {
    await stop();
    cloud.client.end(true);
    await store.close();
    await fixture.stop();
  }
});

test('compression none: plain JSON envelopes packed to maxEnvelopeBytes', { timeout: 60_000 }, async () => {
  const fixture = await startRuntime([testRecipe(PUBLISHER, 'sleep 600', accessControl)], { thingName: THING });
  const store = await StreamStore.open(join(tempRoot('ps-'), 'store.sqlite'), { owner: true, logger });
  const cloud = await cloudClient(fixture.runtime.status().brokerUrl);
  await seed(store, 'motor', 400);
  const { stop } = await publisherOn(fixture, store, { maxEnvelopeBytes: 4096, maxRecordsPerEnvelope: 2000, compression: 'none' });
  try {
    await waitFor('all 400 records at the cloud', () => seqsOf(cloud.envelopes, 'motor').length >= 400, 30_000);
    assert.ok(cloud.payloads.every((p) => !isGzip(p) && p.length <= 4096));
    assert.ok(cloud.envelopes.length > 1);
  } finally {
    await stop();
    cloud.client.end(true);
    await store.close();
    await fixture.stop();
  }
});

test('a publisher started while the link swallows everything still publishes, and subscribes to the cloud commands once the link is back', { timeout: 120_000 }, async () => {
  const broker = await startEmbeddedBroker();
  const brokerPort = Number(new URL(broker.url).port);
  const proxy = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: brokerPort });
  const fixture = await startRuntime([testRecipe(PUBLISHER, 'sleep 600', accessControl)], { thingName: THING, brokerUrl: proxy.url });
  const store = await StreamStore.open(join(tempRoot('ps-'), 'store.sqlite'), { owner: true, logger });
  let stopPublisher: (() => Promise<void>) | undefined;
  const cloud = await cloudClient(broker.url);
  try {
    await waitFor('the bridge connected through the proxy', () => fixture.runtime.status().ipc !== undefined && (fixture.runtime as unknown as { bridge: { connected: boolean } }).bridge.connected);
    // TCP stays up, nothing gets through: the bridge's SUBSCRIBEs get no SUBACK.
    proxy.blackhole(true);
    await seed(store, 'door-cycle', 5);
    const running = await publisherOn(fixture, store);
    stopPublisher = running.stop;
    const { publisher } = running;
    // The runtime, like the nucleus, waits 10 s for a SUBACK before it fails the subscription:
    // publishing must not wait for that.
    await waitFor('envelopes handed to the nucleus during the outage', () => publisher.metrics.envelopesSent >= 1, 30_000);
    assert.equal(publisher.metrics.commandSubscribeFailures, 0, 'published only after a subscription had failed: publishing waited for the SUBACKs');
    await waitFor('the subscriptions failed while the link swallows everything', () => publisher.metrics.commandSubscribeFailures >= 1, 30_000);
    proxy.blackhole(false);
    await waitFor('the records at the cloud once the link is back', () => seqsOf(cloud.envelopes, 'door-cycle').length >= 5, 90_000);
    // The retried subscription delivers the ack: only an applied ack deletes the records.
    const deadline = Date.now() + 60_000;
    while (publisher.metrics.acksApplied === 0) {
      await ack(cloud.client, { stream: 'door-cycle', epoch: store.epoch, watermark: 5 });
      assert.ok(Date.now() < deadline, 'the ack subscription never came back');
      await new Promise((r) => setTimeout(r, 1000));
    }
    assert.equal((await store.stats()).streams.find((s) => s.stream === 'door-cycle')?.backlogRecords, 0);
  } finally {
    await stopPublisher?.();
    cloud.client.end(true);
    await store.close();
    await fixture.stop();
    await proxy.close();
    await broker.close();
  }
});
