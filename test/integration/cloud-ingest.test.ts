import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import mqtt from 'mqtt';
import { gzipSync } from 'node:zlib';
import { buildEnvelope, checkAck, encodeEnvelopePayload, MAX_DECOMPRESSED_ENVELOPE_BYTES } from '../../components/shared/envelope';
import { dataTopic } from '../../components/shared/topics';
import type { ArchiveBackend } from '../../cloud/archive';
import { LocalFolderArchive } from '../../cloud/archive';
import { auditArchive } from '../../cloud/audit';
import { healthKey, quarantineKey, recordKey, STATUS_KEY } from '../../cloud/keys';
import { CloudIngest, MAX_PAYLOAD_BYTES } from '../../cloud/ingest';
import { startEmbeddedBroker } from '../../runtime/broker';
import { captureLogger, delay, DEVICE, EPOCH, FakeDevice, makeEnvelope, makeRecords, startHarness, STREAM, tempDir, waitUntil, type Harness } from '../helpers/cloud-fixtures';

async function withHarness(body: (h: Harness) => Promise<void>, options: Parameters<typeof startHarness>[0] = {}): Promise<void> {
  const h = await startHarness(options);
  try {
    await body(h);
  } finally {
    await h.close();
  }
}

async function rejectedObjects(archive: ArchiveBackend): Promise<Array<Record<string, unknown>>> {
  const keys = await archive.list('rejected/');
  return Promise.all(keys.map(async (key) => JSON.parse((await archive.get(key))!.toString('utf8')) as Record<string, unknown>));
}

describe('CloudIngest with a real broker', () => {
  test('a valid envelope is archived and acked with watermark = seqTo', () =>
    withHarness(async (h) => {
      const envelope = makeEnvelope(1, 10);
      await h.device.publishEnvelope(envelope);
      const ack = await h.device.waitForAck((a) => a.watermark === 10, 'ack with watermark 10');
      assert.equal(checkAck(ack).ok, true);
      assert.equal(ack.schema, 'elevator.ack/1');
      assert.equal(ack.stream, STREAM);
      assert.equal(ack.epoch, EPOCH);
      assert.deepEqual(ack.gaps, []);
      assert.ok(Math.abs(Date.parse(ack.issuedAt) - Date.now()) < 60_000);

      const key = recordKey(DEVICE, STREAM, EPOCH, 1, 10);
      assert.deepEqual(await h.archive.list('records/'), [key]);
      const stored = JSON.parse((await h.archive.get(key))!.toString('utf8'));
      assert.equal(stored.device, DEVICE);
      assert.equal(stored.envelopeId, envelope.envelopeId);
      assert.equal(stored.seqFrom, 1);
      assert.equal(stored.seqTo, 10);
      assert.deepEqual(stored.records, envelope.records);
      // acksSent counts the broker's PUBACK, which can land after the device has the ack.
      await waitUntil(() => h.ingest.stats().acksSent >= 1, 'the ack PUBACKed');
      const stats = h.ingest.stats();
      assert.equal(stats.received, 1);
      assert.equal(stats.accepted, 1);
      assert.equal(stats.recordsArchived, 10);
      assert.equal(stats.acksSent, 1);
    }));

  test('the same envelope sent twice is archived once and its object bytes stay unchanged', () =>
    withHarness(async (h) => {
      const envelope = makeEnvelope(1, 10);
      await h.device.publishEnvelope(envelope);
      await h.device.waitForAck((a) => a.watermark === 10, 'first ack');
      const key = recordKey(DEVICE, STREAM, EPOCH, 1, 10);
      const before = await h.archive.get(key);
      await delay(5); // a rewrite would carry a different receivedAt

      await h.device.publishEnvelope(envelope);
      await waitUntil(() => h.device.acks.length === 2, 'ack for the resend');
      assert.equal(h.device.acks[1].watermark, 10);
      const stats = h.ingest.stats();
      assert.equal(stats.duplicatesDropped, 10);
      assert.equal(stats.recordsArchived, 10);
      assert.equal(stats.objectsWritten, 1);
      assert.deepEqual(await h.archive.list('records/'), [key]);
      assert.deepEqual(await h.archive.get(key), before);
    }));

  test('concurrent copies of one envelope are written once (one message at a time per stream)', () =>
    withHarness(
      async (h) => {
        const envelope = makeEnvelope(1, 5);
        await Promise.all([h.device.publishEnvelope(envelope), h.device.publishEnvelope(envelope), h.device.publishEnvelope(envelope)]);
        await waitUntil(() => h.ingest.stats().received === 3, 'three messages');
        await h.ingest.idle();
        const stats = h.ingest.stats();
        assert.equal(stats.objectsWritten, 1);
        assert.equal(stats.recordsArchived, 5);
        assert.equal(stats.duplicatesDropped, 10);
      },
      // A slow archive widens the window in which unserialised handlers would both see "new".
      { archiveWrapper: (inner) => slowArchive(inner, 50) },
    ));

  test('out-of-order envelopes: the ack shows the gap, then the watermark jumps when it fills', () =>
    withHarness(async (h) => {
      await h.device.publishEnvelope(makeEnvelope(1, 5));
      await h.device.waitForAck((a) => a.watermark === 5, 'watermark 5');
      await h.device.publishEnvelope(makeEnvelope(11, 15));
      const withGap = await h.device.waitForAck((a) => a.gaps.length > 0, 'ack with a gap');
      assert.equal(withGap.watermark, 5);
      assert.deepEqual(withGap.gaps, [[6, 10]]);
      await h.device.publishEnvelope(makeEnvelope(6, 10));
      const filled = await h.device.waitForAck((a) => a.watermark === 15, 'watermark 15');
      assert.deepEqual(filled.gaps, []);
      assert.equal((await h.archive.list('records/')).length, 3);
    }));

  test('a partly overlapping envelope archives only its new records, as one contiguous object', () =>
    withHarness(async (h) => {
      await h.device.publishEnvelope(makeEnvelope(1, 10));
      await h.device.waitForAck((a) => a.watermark === 10, 'watermark 10');
      await h.device.publishEnvelope(makeEnvelope(6, 14));
      await h.device.waitForAck((a) => a.watermark === 14, 'watermark 14');
      assert.deepEqual(await h.archive.list('records/'), [recordKey(DEVICE, STREAM, EPOCH, 1, 10), recordKey(DEVICE, STREAM, EPOCH, 11, 14)]);
      assert.equal(h.ingest.stats().duplicatesDropped, 5);
    }));

  test('a tampered envelope is rejected for its checksum, kept under rejected/, and ingest keeps working', () =>
    withHarness(async (h) => {
      const tampered = makeEnvelope(1, 5);
      tampered.records[2].data.openMs = 999_999;
      await h.device.publishEnvelope(tampered);
      await waitUntil(() => h.ingest.stats().rejected.checksum === 1, 'checksum rejection');
      await h.ingest.idle();

      const [stored] = await rejectedObjects(h.archive);
      assert.match(String(stored.reason), /^checksum/);
      assert.equal(stored.topic, dataTopic(DEVICE, STREAM));
      assert.deepEqual(JSON.parse(String(stored.payload)), tampered);
      const logged = h.logs.find((e) => e.message === 'message rejected');
      assert.ok(logged, 'rejection is logged');
      assert.match(String(logged.reason), /^checksum/);
      assert.equal(logged.topic, dataTopic(DEVICE, STREAM));
      assert.deepEqual(await h.archive.list('records/'), []);

      await h.device.publishEnvelope(makeEnvelope(1, 5));
      await h.device.waitForAck((a) => a.watermark === 5, 'ack for the next valid envelope');
      assert.equal(h.device.acks.length, 1, 'the tampered envelope is not acked');
    }));

  test('a gzip-compressed envelope is archived like a JSON one; a gzip bomb and a corrupt gzip payload are rejected with their reasons', () =>
    withHarness(async (h) => {
      const envelope = makeEnvelope(1, 200);
      await h.device.publishRaw(dataTopic(DEVICE, STREAM), encodeEnvelopePayload(envelope, 0));
      await h.device.waitForAck((a) => a.watermark === 200, 'ack for the compressed envelope');
      const stored = JSON.parse((await h.archive.get(recordKey(DEVICE, STREAM, EPOCH, 1, 200)))!.toString('utf8'));
      assert.deepEqual(stored.records, envelope.records);
      await h.device.publishRaw(dataTopic(DEVICE, STREAM), gzipSync(Buffer.alloc(MAX_DECOMPRESSED_ENVELOPE_BYTES + 1, 0x20)));
      const corrupt = encodeEnvelopePayload(makeEnvelope(201, 210), 0);
      corrupt[corrupt.length - 5] ^= 0xff;
      await h.device.publishRaw(dataTopic(DEVICE, STREAM), corrupt);
      await waitUntil(() => Object.values(h.ingest.stats().rejected).reduce((a, b) => a + b, 0) === 2, 'two rejections');
      assert.deepEqual(h.ingest.stats().rejected, { oversized: 1, gzip: 1 });
    }));

  test('malformed JSON, schema violations, mis-addressed and oversized messages are each rejected and counted', () =>
    withHarness(async (h) => {
      const topic = dataTopic(DEVICE, STREAM);
      await h.device.publishRaw(topic, '{"schema": "elevator.envelope/1", ');
      const noChecksum: Record<string, unknown> = { ...makeEnvelope(1, 3) };
      delete noChecksum.checksum;
      await h.device.publishRaw(topic, JSON.stringify(noChecksum));
      // A valid envelope of another device, published on this device's topic.
      await h.device.publishEnvelope(makeEnvelope(1, 3, { device: 'elevator-0002' }), topic);
      await h.device.publishEnvelope(makeEnvelope(1, 3, { stream: 'run' }), topic);
      await h.device.publishRaw(topic, Buffer.alloc(MAX_PAYLOAD_BYTES + 1, 0x20));

      await waitUntil(() => h.ingest.stats().received === 5, 'five messages');
      await h.ingest.idle();
      const stats = h.ingest.stats();
      assert.deepEqual(stats.rejected, { json: 1, schema: 1, 'mis-addressed': 2, oversized: 1 });
      assert.equal(stats.accepted, 0);
      assert.deepEqual(await h.archive.list('records/'), []);

      const reasons = (await rejectedObjects(h.archive)).map((r) => String(r.reason)).sort();
      assert.equal(reasons.length, 5);
      assert.match(reasons.find((r) => r.startsWith('schema'))!, /checksum/);
      assert.match(reasons.find((r) => r.includes('elevator-0002'))!, /^mis-addressed/);
      const oversized = (await rejectedObjects(h.archive)).find((r) => r.category === 'oversized')!;
      assert.equal(oversized.bytes, MAX_PAYLOAD_BYTES + 1);
      assert.equal(oversized.truncated, true);
      assert.equal(h.device.acks.length, 0);
    }));

  test('health messages keep the latest per device; one that breaks health.v1 or names another device is rejected', () =>
    withHarness(async (h) => {
      const topic = dataTopic(DEVICE, 'health');
      const health = (status: string, reasons: string[], device = DEVICE) => ({
        schema: 'elevator.health/1',
        device,
        time: new Date().toISOString(),
        status,
        reasons,
        components: {},
        system: { loadAvg1m: 0.1, cpuCount: 2, memFreeBytes: 1e9, memTotalBytes: 2e9, diskFreeBytes: null },
      });
      await h.device.publishRaw(topic, JSON.stringify(health('degraded', ['backlog'])));
      await h.device.publishRaw(topic, JSON.stringify(health('healthy', [])));
      await h.device.publishRaw(topic, '[1,2]');
      await h.device.publishRaw(topic, JSON.stringify({ ...health('healthy', []), status: 'fine' }));
      await h.device.publishRaw(topic, JSON.stringify(health('healthy', [], 'elevator-0002')));
      await waitUntil(() => h.ingest.stats().received === 5, 'five health messages');
      await h.ingest.idle();
      const latest = JSON.parse((await h.archive.get(healthKey(DEVICE)))!.toString('utf8'));
      assert.equal(latest.health.status, 'healthy');
      assert.deepEqual(latest.health.reasons, []);
      assert.equal(latest.device, DEVICE);
      assert.equal(h.ingest.stats().healthStored, 2);
      assert.deepEqual(h.ingest.stats().rejected, { health: 2, 'mis-addressed': 1 });
    }));

  test('after a restart the ledger is rebuilt from the archive and an old envelope is a duplicate', () =>
    withHarness(async (h) => {
      await h.device.publishEnvelope(makeEnvelope(1, 10));
      await h.device.publishEnvelope(makeEnvelope(21, 25));
      await h.device.waitForAck((a) => a.watermark === 10 && a.gaps.length === 1, 'ack 10 with gap');
      const before = await h.archive.get(recordKey(DEVICE, STREAM, EPOCH, 1, 10));

      const fresh = await h.restartIngest();
      h.device.acks.length = 0;
      await h.device.publishEnvelope(makeEnvelope(1, 10));
      const ack = await h.device.waitForAck(() => true, 'ack after restart');
      assert.equal(ack.watermark, 10);
      assert.deepEqual(ack.gaps, [[11, 20]]);
      const stats = fresh.stats();
      assert.equal(stats.duplicatesDropped, 10);
      assert.equal(stats.recordsArchived, 0);
      assert.deepEqual(await h.archive.get(recordKey(DEVICE, STREAM, EPOCH, 1, 10)), before);
    }));

  test('an archive write failure is neither acked nor entered in the ledger; the resend succeeds', async () => {
    let failPuts = true;
    await withHarness(
      async (h) => {
        await h.device.publishEnvelope(makeEnvelope(1, 4));
        await waitUntil(() => h.ingest.stats().archiveErrors === 1, 'archive error');
        await delay(100); // longer than the ack window
        assert.equal(h.device.acks.length, 0);
        assert.equal(h.ingest.ackState(DEVICE, STREAM, EPOCH)?.watermark ?? 0, 0);
        assert.equal(h.ingest.stats().recordsArchived, 0);
        assert.ok(h.logs.some((e) => e.level === 'error' && String(e.message).includes('archive write failed')));

        failPuts = false;
        await h.device.publishEnvelope(makeEnvelope(1, 4));
        await h.device.waitForAck((a) => a.watermark === 4, 'ack after the archive recovers');
        assert.equal(h.ingest.stats().recordsArchived, 4);
      },
      {
        archiveAttempts: 2,
        archiveRetryBaseMs: 1,
        archiveWrapper: (inner) => ({
          put: (key, body) => (failPuts && key.startsWith('records/') ? Promise.reject(new Error('disk full')) : inner.put(key, body)),
          get: (key) => inner.get(key),
          list: (prefix) => inner.list(prefix),
        }),
      },
    );
  });

  test('acks within the window are coalesced, and the last one reflects the last envelope', () =>
    withHarness(
      async (h) => {
        for (let i = 0; i < 5; i += 1) await h.device.publishEnvelope(makeEnvelope(i * 10 + 1, i * 10 + 10));
        const last = await h.device.waitForAck((a) => a.watermark === 50, 'watermark 50');
        await delay(600);
        assert.ok(h.device.acks.length < 5, `expected coalesced acks, got ${h.device.acks.length}`);
        assert.equal(h.device.acks[h.device.acks.length - 1], last);
      },
      { ackWindowMs: 400 },
    ));

  test('stats are written to _status/ingest.json periodically', () =>
    withHarness(
      async (h) => {
        await h.device.publishEnvelope(makeEnvelope(1, 3));
        await h.device.waitForAck((a) => a.watermark === 3, 'ack');
        await waitUntil(async () => {
          const body = await h.archive.get(STATUS_KEY);
          // acksSent counts the broker's PUBACK, which can land after the device has the ack.
          return body !== undefined && JSON.parse(body.toString('utf8')).acksSent === 1;
        }, 'status file with acksSent 1');
        const status = JSON.parse((await h.archive.get(STATUS_KEY))!.toString('utf8'));
        assert.equal(status.recordsArchived, 3);
        assert.equal(status.received, 1);
        assert.equal(status.connected, true);
      },
      { statusIntervalMs: 30 },
    ));

  test('the archive audit agrees with what was sent', () =>
    withHarness(async (h) => {
      await h.device.publishEnvelope(makeEnvelope(1, 10));
      await h.device.publishEnvelope(makeEnvelope(5, 12));
      await h.device.publishEnvelope(makeEnvelope(1, 4, { stream: 'run' }));
      await h.device.publishEnvelope(makeEnvelope(20, 22));
      await waitUntil(() => h.ingest.stats().accepted === 4, 'four envelopes');
      await h.ingest.idle();
      const audit = await auditArchive(h.archive);
      assert.equal(audit.uniqueRecords, 12 + 4 + 3);
      assert.equal(audit.missingRecords, 7);
      const doorCycle = audit.streams.find((s) => s.stream === STREAM)!;
      assert.deepEqual(doorCycle.gaps, [[13, 19]]);
    }));
});

describe('CloudIngest persistent session', () => {
  let broker: Awaited<ReturnType<typeof startEmbeddedBroker>>;
  before(async () => {
    broker = await startEmbeddedBroker();
  });
  after(async () => {
    await broker.close();
  });

  test('QoS 1 envelopes published while the ingest is down are delivered after it reconnects', async () => {
    const dir = await tempDir();
    const device = await FakeDevice.connect(broker.url);
    const clientId = `ingest-persistent-${process.pid}`;
    try {
      const archive = new LocalFolderArchive(dir.path);
      const first = new CloudIngest({ brokerUrl: broker.url, clientId, archive, logger: captureLogger().logger, ackWindowMs: 10, statusIntervalMs: 0 });
      await first.start();
      await first.stop();

      await device.publishEnvelope(makeEnvelope(1, 6));
      await delay(50);
      assert.deepEqual(await archive.list('records/'), [], 'nothing is archived while the ingest is down');

      const second = new CloudIngest({ brokerUrl: broker.url, clientId, archive, logger: captureLogger().logger, ackWindowMs: 10, statusIntervalMs: 0 });
      await second.start();
      try {
        await device.waitForAck((a) => a.watermark === 6, 'ack for the queued envelope');
        assert.deepEqual(await archive.list('records/'), [recordKey(DEVICE, STREAM, EPOCH, 1, 6)]);
      } finally {
        await second.stop();
      }
    } finally {
      await device.close();
      await dir.remove();
    }
  });

  test('an ingest started before the broker is reachable subscribes once it is', async () => {
    const late = await startEmbeddedBroker();
    const port = late.port;
    await late.close();
    const dir = await tempDir();
    const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, { clientId: `ingest-late-${process.pid}`, clean: false, reconnectPeriod: 100 });
    client.on('error', () => undefined);
    const ingest = new CloudIngest({ client, archive: new LocalFolderArchive(dir.path), logger: captureLogger().logger, ackWindowMs: 10, statusIntervalMs: 0 });
    let restarted: Awaited<ReturnType<typeof startEmbeddedBroker>> | undefined;
    try {
      const started = ingest.start();
      await delay(300);
      restarted = await startEmbeddedBroker(port);
      await started;
      const device = await FakeDevice.connect(restarted.url);
      try {
        await device.publishEnvelope(makeEnvelope(1, 2));
        await device.waitForAck((a) => a.watermark === 2, 'ack once the broker is up');
      } finally {
        await device.close();
      }
    } finally {
      await ingest.stop();
      await client.endAsync(true);
      await restarted?.close();
      await dir.remove();
    }
  });
});

function slowArchive(inner: ArchiveBackend, ms: number): ArchiveBackend {
  return {
    put: async (key, body) => {
      await delay(ms);
      await inner.put(key, body);
    },
    get: (key) => inner.get(key),
    list: (prefix) => inner.list(prefix),
  };
}

describe('CloudIngest: data contracts and device clocks', () => {
  test('records that break their data contract are archived, named in the run object, copied to quarantine/ with the reason, and counted', () =>
    withHarness(async (h) => {
      const records = makeRecords(1, 4);
      records[1] = { ...records[1], data: { ...records[1].data, reversals: -2 } };
      records[3] = { ...records[3], data: { ...records[3].data, closeEndTime: 1 } };
      const envelope = buildEnvelope(DEVICE, STREAM, EPOCH, records);
      await h.device.publishEnvelope(envelope);
      await h.device.waitForAck((a) => a.watermark === 4, 'the whole range acked: the seqs were delivered');
      const run = JSON.parse((await h.archive.get(recordKey(DEVICE, STREAM, EPOCH, 1, 4)))!.toString('utf8'));
      assert.equal(run.records.length, 4, 'the archive holds what the device sent');
      assert.equal(run.dataSchema, 'elevator.door-cycle/1');
      assert.deepEqual(
        run.invalid.map((i: { seq: number }) => i.seq),
        [2, 4],
      );
      assert.match(run.invalid[0].reason, /door-cycle: \/reversals must be >= 0/);
      assert.match(run.invalid[1].reason, /\/closeEndTime is before \/openStartTime \(a negative duration\)/);
      const quarantine = JSON.parse((await h.archive.get(quarantineKey(DEVICE, STREAM, EPOCH, 1, 4)))!.toString('utf8'));
      assert.equal(quarantine.detectedBy, 'cloud');
      assert.deepEqual(
        quarantine.records.map((r: { seq: number; reason: string }) => r.seq),
        [2, 4],
      );
      assert.deepEqual(h.ingest.stats().invalidRecords, { [STREAM]: 2 });
    }));

  test('an envelope naming a data contract the ingest does not know has every record quarantined', () =>
    withHarness(async (h) => {
      const envelope = { ...makeEnvelope(1, 3), dataSchema: 'elevator.door-cycle/2' };
      await h.device.publishEnvelope(envelope);
      await h.device.waitForAck((a) => a.watermark === 3, 'ack');
      const run = JSON.parse((await h.archive.get(recordKey(DEVICE, STREAM, EPOCH, 1, 3)))!.toString('utf8'));
      assert.equal(run.invalid.length, 3);
      assert.match(run.invalid[0].reason, /dataSchema elevator\.door-cycle\/2 is not a contract this ingest knows for stream door-cycle \(it knows elevator\.door-cycle\/1\)/);
      assert.deepEqual(h.ingest.stats().invalidRecords, { [STREAM]: 3 });
    }));

  test('valid records carry no invalid list and nothing goes to quarantine/', () =>
    withHarness(async (h) => {
      await h.device.publishEnvelope(makeEnvelope(1, 5));
      await h.device.waitForAck((a) => a.watermark === 5, 'ack');
      const run = JSON.parse((await h.archive.get(recordKey(DEVICE, STREAM, EPOCH, 1, 5)))!.toString('utf8'));
      assert.equal(run.invalid, undefined);
      assert.deepEqual(await h.archive.list('quarantine/'), []);
      assert.deepEqual(h.ingest.stats().invalidRecords, {});
    }));

  test('a device whose sentAt is far from the receive time is flagged once as skewed, and cleared when its clock is back', () =>
    withHarness(
      async (h) => {
        const ahead = buildEnvelope(DEVICE, STREAM, EPOCH, makeRecords(1, 2), new Date(Date.now() + 10 * 60_000));
        await h.device.publishEnvelope(ahead);
        await h.device.waitForAck((a) => a.watermark === 2, 'ack');
        const again = buildEnvelope(DEVICE, STREAM, EPOCH, makeRecords(3, 4), new Date(Date.now() + 10 * 60_000));
        await h.device.publishEnvelope(again);
        await h.device.waitForAck((a) => a.watermark === 4, 'ack');
        assert.equal(h.ingest.stats().clockSkewFlags, 2);
        assert.deepEqual(h.ingest.stats().devicesSkewed, [DEVICE]);
        assert.equal(h.logs.filter((e) => e.message === 'device clock skew').length, 1, 'logged when it went off, not for every envelope');
        assert.deepEqual(h.ingest.stats().invalidRecords, {}, 'the records are judged by the device clock, so they are not in the future');
        await h.device.publishEnvelope(buildEnvelope(DEVICE, STREAM, EPOCH, makeRecords(5, 6), new Date()));
        await h.device.waitForAck((a) => a.watermark === 6, 'ack');
        assert.deepEqual(h.ingest.stats().devicesSkewed, []);
        assert.equal(h.logs.filter((e) => e.message === 'device clock back within bounds').length, 1);
      },
      { maxClockSkewMs: 60_000 },
    ));
});
