// The integrity checker, decoupled from ingestion: a real mosquitto, real devices (store +
// MqttPublisher + the SDK's MQTT 5 client), the ingest in checker mode and the checker, each with
// its own MQTT connection. Gaps are planted by deleting archive objects.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { createLogger } from '../../components/shared/logger';
import { LocalFolderArchive } from '../../cloud/archive';
import { auditArchive } from '../../cloud/audit';
import { IntegrityChecker } from '../../cloud/checker';
import { CloudIngest } from '../../cloud/ingest';
import { epochKey, gapKey, recordKey, RECORDS_PREFIX } from '../../cloud/keys';
import { findMosquitto, MOSQUITTO_MISSING, startMosquitto } from '../helpers/mosquitto';
import { tempRoot, waitFor } from '../helpers/runtime-fixture';
import { SIM_STREAM, startSimDevice } from '../helpers/sim-device';
import { makeEnvelope } from '../helpers/cloud-fixtures';

const mosquitto = findMosquitto();
const logger = createLogger('checker-test');
logger.level = process.env.LOG_LEVEL ?? 'error';

async function connected(url: string, clientId: string): Promise<mqtt.MqttClient> {
  const client = mqtt.connect(url, { clientId, clean: true, reconnectPeriod: 500 });
  await new Promise<void>((resolve) => client.once('connect', () => resolve()));
  return client;
}

function checkerFor(archive: LocalFolderArchive, client: mqtt.MqttClient): IntegrityChecker {
  return new IntegrityChecker({ archive, client, logger, intervalMs: 200, gapGraceMs: 500, backfillRetryMs: 1_000, ackRepeatMs: 2_000 });
}

test(
  'the checker finds planted gaps, backfills the records the device still has, and records the rest as permanent gaps with the device\'s reason',
  { timeout: 120_000, skip: mosquitto ? false : MOSQUITTO_MISSING },
  async () => {
    const broker = await startMosquitto(mosquitto!);
    const root = tempRoot('checker-');
    const archive = new LocalFolderArchive(join(root, 'archive'));
    const ingest = new CloudIngest({ brokerUrl: broker.url, clientId: 'ingest-1', archive, logger, integrity: 'checker', statusIntervalMs: 0 });
    await ingest.start();
    const checkerClient = await connected(broker.url, 'checker');
    const device = await startSimDevice('elevator-0001', broker.url, logger);
    let checker = checkerFor(archive, checkerClient);
    try {
      // Seqs 1..30 in envelopes of ten, archived and acked: the device deletes them.
      await checker.start();
      for (let i = 0; i < 3; i += 1) {
        await device.append(10);
        await waitFor(`envelope ${i + 1} archived`, async () => (await archive.list(RECORDS_PREFIX)).length === i + 1);
      }
      await waitFor('1..30 acked and deleted on the device', async () => (await device.backlog()) === 0);

      // 31..60 while the checker is away: archived, not acked, so the device keeps them.
      await checker.stop();
      for (let i = 3; i < 6; i += 1) {
        await device.append(10);
        await waitFor(`envelope ${i + 1} archived`, async () => (await archive.list(RECORDS_PREFIX)).length === i + 1);
      }
      assert.equal(await device.backlog(), 30);

      // Plant two gaps: 11..20, which the device no longer has, and 41..50, which it still has.
      const epoch = device.store.epoch;
      for (const [from, to] of [[11, 20], [41, 50]]) rmSync(join(root, 'archive', recordKey(device.thing, SIM_STREAM, epoch, from, to)));

      checker = checkerFor(archive, checkerClient);
      await checker.start();
      await waitFor('every gap closed: backfilled or declared permanent', () => {
        const stats = checker.stats();
        return stats.passes > 0 && stats.openGapRecords === 0 && stats.permanentGapRecords['deleted-after-ack'] === 10;
      }, 60_000);
      await waitFor('the device has its last ack', async () => (await device.backlog()) === 0, 30_000);

      const stats = checker.stats();
      assert.ok(stats.backfillRequests >= 1, 'backfill was asked for');
      assert.deepEqual(stats.permanentGapRecords, { 'deleted-after-ack': 10 });
      const audit = await auditArchive(archive);
      assert.equal(audit.duplicateRecords, 0);
      assert.equal(audit.uniqueRecords, 50, 'all but the ten the device no longer had');
      const stream = audit.streams.find((s) => s.device === device.thing)!;
      assert.deepEqual(stream.gone, { 'deleted-after-ack': 10 });
      assert.equal(stream.watermark, 60);
      assert.equal(stream.missingRecords, 0);
      assert.ok((await archive.get(recordKey(device.thing, SIM_STREAM, epoch, 41, 50))) !== undefined, 'the backfilled envelope is back under its own key');
      const permanent = (await archive.list('_alerts/history/')).length;
      assert.ok(permanent > 0, 'the permanent gap is an alert event');
    } finally {
      await checker.stop();
      await device.stop();
      await ingest.stop();
      checkerClient.end(true);
      await broker.stop();
    }
  },
);

test('an epoch report closes the old epoch: what never arrived becomes a gaps/ object with reason epoch-replaced, and is not asked for', { timeout: 60_000, skip: mosquitto ? false : MOSQUITTO_MISSING }, async () => {
  const broker = await startMosquitto(mosquitto!);
  const archive = new LocalFolderArchive(join(tempRoot('checker-epoch-'), 'archive'));
  const client = await connected(broker.url, 'checker-epoch');
  const backfills: string[] = [];
  const watcher = await connected(broker.url, 'watcher');
  await watcher.subscribeAsync('cmd/elevator/+/backfill', { qos: 1 });
  watcher.on('message', (_topic, payload) => backfills.push(payload.toString()));
  const checker = checkerFor(archive, client);
  try {
    const old = makeEnvelope(1, 10);
    const device = old.device;
    await archive.put(recordKey(device, old.stream, old.epoch, 1, 10), JSON.stringify(old));
    const later = makeEnvelope(21, 25);
    await archive.put(recordKey(device, later.stream, later.epoch, 21, 25), JSON.stringify(later));
    const newEpoch = '5d1c5f7c-3a43-4d3b-9b8e-6a1d2c3b4a5f';
    await archive.put(
      epochKey(device, newEpoch),
      JSON.stringify({ schema: 'elevator.epoch/1', device, epoch: newEpoch, previousEpoch: old.epoch, previousStreams: [{ stream: old.stream, appended: 30, watermark: 0 }], reportedAt: new Date().toISOString() }),
    );
    await checker.checkOnce();
    await checker.checkOnce();
    const stats = checker.stats();
    assert.equal(stats.epochLoss, 15, '11..20 and 26..30 never arrived');
    assert.deepEqual(await archive.list('gaps/'), [gapKey(device, old.stream, old.epoch, 11, 20), gapKey(device, old.stream, old.epoch, 26, 30)]);
    const body = JSON.parse((await archive.get((await archive.list('gaps/'))[0]))!.toString('utf8'));
    assert.equal(body.reason, 'epoch-replaced');
    assert.equal(stats.openGapRecords, 0, 'a closed epoch has no open gaps');
    await new Promise((r) => setTimeout(r, 700));
    await checker.checkOnce();
    assert.deepEqual(backfills, [], 'nothing of a replaced epoch is asked for');
  } finally {
    await checker.stop();
    client.end(true);
    watcher.end(true);
    await broker.stop();
  }
});
