/**
 * Generated bad input at every boundary where data enters a part (issue 5): sensor input at the
 * acquisition, a component's configuration, commands from the cloud at the publisher, and
 * envelopes and records at the cloud ingest. At each: nothing throws or crashes, every bad input
 * is counted with a reason, and every good input gets through. Sensor input is tested twice: as
 * records from a source, and as raw lines of a recording. Real parts throughout: SQLite
 * store files, the local runtime and the SDK IPC client, an MQTT broker.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { Acquisition } from '../../components/sensor-acquisition/acquisition';
import { sensorAcquisitionConfigSchema } from '../../components/sensor-acquisition/config';
import { DEFAULT_DETECTOR_CONFIG, Deriver, DerivedSource } from '../../components/sensor-acquisition/derive';
import { ReplaySignals } from '../../components/sensor-acquisition/replay';
import type { SampledRecord, SensorSource } from '../../components/sensor-acquisition/simulator';
import { streamBufferConfigSchema } from '../../components/stream-buffer/config';
import { mqttPublisherConfigSchema } from '../../components/mqtt-publisher/config';
import { healthReporterConfigSchema } from '../../components/health-reporter/config';
import { IpcTransport } from '../../components/mqtt-publisher/ipc-transport';
import { Publisher, type PublisherConfig } from '../../components/mqtt-publisher/publisher';
import { componentSettings } from '../../components/shared/deployment-hooks';
import { buildEnvelope, type WireRecord } from '../../components/shared/envelope';
import { GreengrassIpc } from '../../components/shared/ipc';
import { checkRecord, DEFAULT_DOMAIN_LIMITS } from '../../components/shared/records';
import { StreamStore } from '../../components/shared/store';
import { dataTopic, commandTopic } from '../../components/shared/topics';
import { compileValidator } from '../../components/shared/validation';
import { badPayload, brokenRecord, deeplyNested, garbageRecord, hugeString, validRecord } from '../helpers/boundary-arbitraries';
import { captureLogger } from '../helpers/capture-logger';
import { DEVICE, EPOCH, startHarness, waitUntil, type Harness } from '../helpers/cloud-fixtures';
import { startRuntime, tempRoot, testRecipe, type RuntimeFixture } from '../helpers/runtime-fixture';

// A failure prints its seed; FUZZ_SEED=<seed> replays that run exactly.
if (process.env.FUZZ_SEED) fc.configureGlobal({ seed: Number(process.env.FUZZ_SEED) });

const NOW = Date.now();
const RATED = DEFAULT_DOMAIN_LIMITS.ratedSpeedMps;
const sum = (counts: Record<string, number>) => Object.values(counts).reduce((a, b) => a + b, 0);

/** Hands the acquisition whatever batch the property generated, once. */
class BatchSource implements SensorSource {
  batch: SampledRecord[] = [];
  advance(): SampledRecord[] {
    const out = this.batch;
    this.batch = [];
    return out;
  }
}

describe('sensor input at the acquisition', () => {
  test('every good record is stored in its stream, every bad one is quarantined with a reason and counted, and nothing throws', async () => {
    const store = await StreamStore.open(join(mkdtempSync(join(tmpdir(), 'fuzz-acq-')), 'store.db'), { owner: true, logger: captureLogger().logger });
    const source = new BatchSource();
    const acquisition = new Acquisition(source, store, { sampleIntervalMs: 100, jitterFraction: 0, maxBatchRecords: 50, maxPendingRecords: 100_000 }, captureLogger().logger);
    const countOf = async (stream: string) => (await store.stats()).streams.find((s) => s.stream === stream)?.appended ?? 0;
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.array(validRecord(NOW, RATED), { maxLength: 8 }),
          fc.array(fc.oneof(brokenRecord(NOW, RATED), garbageRecord()), { maxLength: 8 }),
          fc.nat(),
          async (good, bad, shuffleSeed) => {
            for (const record of good) assert.ok(checkRecord(record.stream, record.data, DEFAULT_DOMAIN_LIMITS, Date.now()).ok, 'the good generator made a good record');
            const batch = [...good, ...bad].sort((a, b) => ((good.indexOf(a) + shuffleSeed) % 3) - ((good.indexOf(b) + shuffleSeed) % 3));
            const before = { ...acquisition.metrics, invalid: sum(acquisition.metrics.invalid) };
            const streamsBefore = new Map<string, number>();
            for (const stream of ['motor', 'run', 'door-cycle', 'quarantine']) streamsBefore.set(stream, await countOf(stream));
            source.batch = batch;
            acquisition.sampleOnce();
            await acquisition.flush();
            assert.equal(acquisition.metrics.sampled - before.sampled, batch.length);
            assert.equal(acquisition.metrics.appended - before.appended, batch.length, 'every input is stored: good ones in their stream, bad ones in quarantine');
            assert.equal(acquisition.metrics.quarantined - before.quarantined, bad.length);
            assert.equal(sum(acquisition.metrics.invalid) - before.invalid, bad.length, 'each bad input is counted');
            for (const stream of ['motor', 'run', 'door-cycle']) {
              assert.equal((await countOf(stream)) - streamsBefore.get(stream)!, good.filter((r) => r.stream === stream).length, `${stream}: every good record got through`);
            }
            assert.equal((await countOf('quarantine')) - streamsBefore.get('quarantine')!, bad.length);
          },
        ),
        { numRuns: 60 },
      );
      const quarantined = await store.readPending('quarantine', 10_000, Number.MAX_SAFE_INTEGER);
      assert.ok(quarantined.length > 0);
      for (const record of quarantined) {
        assert.ok(typeof record.data.reason === 'string' && record.data.reason.length > 0, 'each carries its reason');
        assert.ok(JSON.stringify(record.data).length < 64 * 1024, 'a quarantined value is bounded, however big the input was');
      }
    } finally {
      await acquisition.stop();
      await store.close();
    }
  });
});

describe('sensor input lines at a replay source', () => {
  test('bad lines anywhere in a recording are quarantined with their line number; every good sample still plays and the events come out', async () => {
    const recording = readFileSync(join(__dirname, '..', '..', '..', 'test', 'fixtures', 'replay-two-runs.ndjson'), 'utf8').trimEnd().split('\n');
    const store = await StreamStore.open(join(mkdtempSync(join(tmpdir(), 'fuzz-replay-')), 'store.db'), { owner: true, logger: captureLogger().logger });
    const runsStored = async () => (await store.stats()).streams.find((s) => s.stream === 'run')?.appended ?? 0;
    const badLine = badPayload()
      .map((bytes) => bytes.toString('latin1').replace(/[\r\n]/g, ' '))
      .filter((line) => line.trim().length > 0);
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(fc.tuple(fc.nat(recording.length), badLine), { minLength: 1, maxLength: 6 }), async (insertions) => {
          const lines = [...recording];
          for (const [at, line] of [...insertions].sort((a, b) => b[0] - a[0])) lines.splice(at, 0, line);
          const signals = new ReplaySignals(lines.join('\n'), 'ndjson', { origin: 'fuzz.ndjson', timeScale: 1e9 });
          const deriver = new Deriver({ landingHeightsM: [0, 3, 6, 9], doorWidthM: 0.9, metricsIntervalMs: 1000, rawSamples: false, detector: DEFAULT_DETECTOR_CONFIG });
          const acquisition = new Acquisition(new DerivedSource(signals, deriver), store, { sampleIntervalMs: 100, jitterFraction: 0, maxBatchRecords: 500, maxPendingRecords: 100_000 }, captureLogger().logger);
          const runsBefore = await runsStored();
          acquisition.sampleOnce();
          await acquisition.stop();
          assert.equal(acquisition.metrics.quarantined, insertions.length, 'each bad line quarantined');
          assert.deepEqual(acquisition.metrics.invalid, { '[sensor input]': insertions.length });
          assert.equal(signals.metrics().replayedSamples, recording.length, 'every good sample played');
          assert.equal((await runsStored()) - runsBefore, 2, 'both runs still derived');
        }),
        { numRuns: 25 },
      );
      const reasons = (await store.readPending('quarantine', 1000, Number.MAX_SAFE_INTEGER)).map((r) => String(r.data.reason));
      assert.ok(reasons.every((reason) => /^fuzz\.ndjson: line \d+: \S/.test(reason)), reasons.find((r) => !/^fuzz\.ndjson: line \d+/.test(r)));
    } finally {
      await store.close();
    }
  });
});

describe('configuration of every component', () => {
  const schemas = {
    SensorAcquisition: sensorAcquisitionConfigSchema,
    StreamBuffer: streamBufferConfigSchema,
    MqttPublisher: mqttPublisherConfigSchema,
    HealthReporter: healthReporterConfigSchema,
  };

  for (const [component, schema] of Object.entries(schemas)) {
    test(`${component}: any bad configuration is refused with a reason naming a field; the defaults and in-range values pass`, () => {
      const check = compileValidator<Record<string, unknown>>(schema);
      const properties = (schema as { properties: Record<string, { type?: string; minimum?: number; maximum?: number }> }).properties;
      const numericKeys = Object.entries(properties).filter(([, p]) => p.type === 'integer' && p.minimum !== undefined && p.maximum !== undefined);
      assert.ok(check({ accessControl: {} }).ok || check(componentSettings({ accessControl: {} })).ok, 'the defaults pass');
      fc.assert(
        fc.property(fc.constantFrom(...numericKeys), fc.nat(), ([key, p], n) => {
          const value = p.minimum! + (n % (p.maximum! - p.minimum! + 1));
          const result = check(componentSettings({ accessControl: {}, [key]: value }));
          assert.ok(result.ok, `${key}=${value} is in range: ${result.ok ? '' : result.reason}`);
        }),
        { numRuns: 50 },
      );
      fc.assert(
        fc.property(
          fc.oneof(
            fc.constantFrom(...numericKeys).chain(([key, p]) =>
              fc.oneof(fc.constant(p.maximum! + 1), fc.constant(p.minimum! - 1), fc.constant('100'), fc.constant(null), fc.constant(0.5 + p.minimum!)).map((v) => ({ [key]: v })),
            ),
            fc.string({ minLength: 1, maxLength: 40 }).filter((k) => !(k in properties) && k !== 'accessControl').map((k) => ({ [k]: 1 })),
            deeplyNested().map((v) => ({ logLevel: v })),
            hugeString().map((s) => ({ logLevel: s })),
          ),
          (bad) => {
            const result = check(componentSettings({ accessControl: {}, ...bad }));
            assert.equal(result.ok, false, `refused: ${JSON.stringify(bad).slice(0, 100)}`);
            assert.match((result as { reason: string }).reason, /^\/\S*/, 'the reason names the field with a JSON pointer');
          },
        ),
        { numRuns: 60 },
      );
      for (const notAnObject of [null, 7, 'x', [], true]) assert.equal(check(notAnObject).ok, false, `${JSON.stringify(notAnObject)} is refused`);
    });
  }
});

describe('commands from the cloud at the publisher', () => {
  const THING = 'fuzz-thing';
  const PUBLISHER = 'test.FuzzPublisher';
  let fixture: RuntimeFixture;
  let ipc: GreengrassIpc;
  let store: StreamStore;
  let publisher: Publisher;
  const config: PublisherConfig = {
    maxEnvelopeBytes: 120_000,
    maxRecordsPerEnvelope: 10,
    idleIntervalMs: 50,
    resendAfterMs: 60_000,
    backpressureBaseMs: 50,
    backpressureMaxMs: 400,
    maxBackfillRecords: 1000,
    reportRepeatMs: 60_000,
  };

  before(async () => {
    const accessControl = {
      'aws.greengrass.ipc.mqttproxy': {
        'test.FuzzPublisher:mqttproxy:1': { operations: ['*'], resources: ['*'] },
      },
    };
    fixture = await startRuntime([testRecipe(PUBLISHER, 'sleep 600', accessControl)], { thingName: THING });
    store = await StreamStore.open(join(tempRoot('fuzz-pub-'), 'store.db'), { owner: true, logger: captureLogger().logger });
    await store.append(Array.from({ length: 50 }, (_, i) => ({ stream: 'motor', priority: 1, time: NOW, mono: i, data: { carState: 'idle', currentA: i, temperatureC: 30, vibrationMmS: 0.1 } })));
    const logger = captureLogger().logger;
    ipc = await GreengrassIpc.connect({ logger, socketPath: fixture.runtime.socketPath, authToken: fixture.runtime.tokenFor(PUBLISHER)!, connectDeadlineMs: 10_000 });
    publisher = new Publisher(store, new IpcTransport(ipc), THING, config, logger);
    await publisher.start();
  });

  after(async () => {
    await publisher?.stop();
    await ipc?.close();
    await store?.close();
    await fixture?.stop();
  });

  /** Waits until the publisher has handled every command given to it so far. */
  const settled = () => (publisher as unknown as { ackChain: Promise<void> }).ackChain;

  test('malformed, wrong-typed, huge and deeply nested acks and backfill requests are counted by reason; valid ones are applied', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(badPayload(), { minLength: 1, maxLength: 6 }), fc.integer({ min: 1, max: 50 }), async (payloads, watermark) => {
        const before = { invalidAcks: sum(publisher.metrics.invalidAcks), applied: publisher.metrics.acksApplied, rejected: sum(publisher.backfill.metrics.backfillRejected), served: publisher.backfill.metrics.backfillRequests };
        for (const payload of payloads) {
          publisher.onAck(payload);
          publisher.onBackfill(payload);
        }
        const ack = { schema: 'elevator.ack/1', stream: 'motor', epoch: store.epoch, watermark, gaps: [], issuedAt: new Date().toISOString() };
        publisher.onAck(Buffer.from(JSON.stringify(ack)));
        const backfill = { schema: 'elevator.backfill/1', requestId: `r-${watermark}`, device: THING, stream: 'motor', epoch: store.epoch, ranges: [[1, 2]], issuedAt: new Date().toISOString() };
        publisher.onBackfill(Buffer.from(JSON.stringify(backfill)));
        await settled();
        assert.equal(sum(publisher.metrics.invalidAcks) - before.invalidAcks, payloads.length, 'each bad ack counted under a reason');
        assert.equal(sum(publisher.backfill.metrics.backfillRejected) - before.rejected, payloads.length, 'each bad backfill request counted under a reason');
        assert.equal(publisher.metrics.acksApplied - before.applied, 1, 'the valid ack was applied');
        assert.equal(publisher.backfill.metrics.backfillRequests - before.served, 1, 'the valid backfill request was served');
      }),
      { numRuns: 40 },
    );
    for (const reason of Object.keys(publisher.metrics.invalidAcks)) assert.match(reason, /^(json|schema|gaps)$/, `a reason category: ${reason}`);
  });

  test('commands through the broker and the runtime bridge: bad ones are counted, a good ack still lands', async () => {
    const mqtt = await import('mqtt');
    const cloud = await mqtt.connectAsync(fixture.runtime.status().brokerUrl, { clientId: `fuzz-cloud-${process.pid}` });
    try {
      const before = { invalid: sum(publisher.metrics.invalidAcks), applied: publisher.metrics.acksApplied };
      const payloads = fc.sample(badPayload().filter((p) => p.length < 100_000), { numRuns: 30, seed: 7 });
      for (const payload of payloads) await cloud.publishAsync(commandTopic(THING, 'ack'), payload, { qos: 1 });
      await cloud.publishAsync(commandTopic(THING, 'ack'), JSON.stringify({ schema: 'elevator.ack/1', stream: 'motor', epoch: store.epoch, watermark: 50, gaps: [], issuedAt: new Date().toISOString() }), { qos: 1 });
      await waitUntil(() => publisher.metrics.acksApplied > before.applied, 'the good ack', 15_000);
      await settled();
      assert.equal(sum(publisher.metrics.invalidAcks) - before.invalid, payloads.length);
    } finally {
      await cloud.endAsync(true);
    }
  });
});

describe('envelopes and records at the cloud ingest', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ maxPayloadBytes: 128 * 1024 });
  });
  after(async () => {
    await h?.close();
  });

  test('bad payloads are rejected and stored with a reason, bad records in good envelopes are quarantined, good envelopes are archived and acked', async () => {
    let nextSeq = 1;
    await fc.assert(
      fc.asyncProperty(
        fc.array(badPayload(), { maxLength: 5 }),
        fc.array(fc.oneof(validRecord(NOW, RATED), brokenRecord(NOW, RATED)), { minLength: 1, maxLength: 6 }),
        async (payloads, records) => {
          const before = { received: h.ingest.stats().received, rejected: sum(h.ingest.stats().rejected), invalid: sum(h.ingest.stats().invalidRecords), archived: h.ingest.stats().recordsArchived };
          for (const payload of payloads) await h.device.publishRaw(dataTopic(DEVICE, 'motor'), payload);
          // One good envelope per stream in the batch; its records may break their contract.
          let envelopes = 0;
          let broken = 0;
          let archivable = 0;
          let oversized = 0;
          for (const stream of ['motor', 'run', 'door-cycle']) {
            const mine = records.filter((r) => r.stream === stream);
            if (mine.length === 0) continue;
            const from = nextSeq;
            const wire: WireRecord[] = mine.map((r, i) => ({ seq: from + i, time: NOW, mono: i, data: JSON.parse(JSON.stringify(r.data ?? null) ?? 'null') }));
            const envelope = buildEnvelope(DEVICE, stream, EPOCH, wire);
            envelopes += 1;
            // A huge field can push an envelope past the IoT Core payload limit: then the whole envelope is rejected.
            if (Buffer.byteLength(JSON.stringify(envelope)) > 128 * 1024) {
              oversized += 1;
            } else {
              nextSeq += mine.length;
              archivable += mine.length;
              broken += wire.filter((w) => !checkRecord(stream, w.data, { ratedSpeedMps: 10, maxFutureMs: 300_000 }, Date.now()).ok).length;
            }
            await h.device.publishEnvelope(envelope);
          }
          const expected = before.received + payloads.length + envelopes;
          await waitUntil(() => h.ingest.stats().received === expected && h.ingest.stats().inFlight === 0, 'every message handled', 15_000);
          const after = h.ingest.stats();
          assert.equal(sum(after.rejected) - before.rejected, payloads.length + oversized, 'each bad payload rejected with a reason category');
          assert.equal(after.recordsArchived - before.archived, archivable, 'every record of a good envelope archived');
          assert.equal(sum(after.invalidRecords) - before.invalid, broken, 'each record that breaks its contract counted');
        },
      ),
      { numRuns: 30 },
    );
    const rejected = await h.archive.list('rejected/');
    assert.ok(rejected.length > 0);
    const sample = JSON.parse((await h.archive.get(rejected[0]))!.toString('utf8')) as { reason?: unknown };
    assert.ok(typeof sample.reason === 'string' && sample.reason.length > 0, 'a rejected message is stored with its reason');
  });
});
