import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DeviceStatusBook, deviceStatusKey, type DeviceStatusEntry } from '../../cloud/device-status';
import { createLogger } from '../../components/shared/logger';
import { deviceStatus, deviceStatusOptions } from '../../components/mqtt-publisher/device-status';
import { withArchive } from '../helpers/cloud-fixtures';

const logger = createLogger('device-status-test');
logger.level = 'error';

const T0 = new Date('2026-11-26T14:00:00.000Z');
const at = (sec: number) => new Date(T0.getTime() + sec * 1000);
const payload = (value: unknown) => Buffer.from(JSON.stringify(value));

function online(device: string, startedSec: number, timeSec = startedSec) {
  return deviceStatus(device, `${device}-publisher`, at(startedSec), 30, 'online', 'connected', at(timeSec));
}

describe('DeviceStatusBook', () => {
  test('an online status is kept as the latest and written to device-status/<device>/latest.json', () =>
    withArchive(async (archive) => {
      const book = new DeviceStatusBook({ archive, logger });
      const result = await book.accept('elevator-1', payload(online('elevator-1', 0)), at(1));
      assert.ok(result.ok && result.outcome === 'stored');
      const stored = JSON.parse((await archive.get(deviceStatusKey('elevator-1')))!.toString()) as DeviceStatusEntry;
      assert.equal(stored.status, 'online');
      assert.equal(stored.offlineSince, null);
      assert.equal(stored.receivedAt, at(1).toISOString());
      assert.deepEqual(book.counters, { received: 1, stored: 1, unchanged: 0, stale: 0, invalid: 0, writeFailures: 0 });
    }));

  test('the last will, as the publisher builds it, replaces online; offlineSince is the arrival minus the will delay', () =>
    withArchive(async (archive) => {
      const book = new DeviceStatusBook({ archive, logger });
      const options = deviceStatusOptions('elevator-2', 'elevator-2-publisher', 30, () => at(0));
      await book.accept('elevator-2', Buffer.from(options.announce.online()), at(1));
      const will = await book.accept('elevator-2', Buffer.from(options.will.payload), at(100));
      assert.ok(will.ok && will.outcome === 'stored');
      const latest = await book.latest('elevator-2');
      assert.equal(latest?.status, 'offline');
      assert.equal(latest?.reason, 'connection-lost');
      assert.equal(latest?.offlineSince, at(70).toISOString());
    }));

  test('a clean stop is offline since the time the device wrote it', () =>
    withArchive(async (archive) => {
      const book = new DeviceStatusBook({ archive, logger });
      const options = deviceStatusOptions('elevator-3', 'c', 30, () => at(5));
      const result = await book.accept('elevator-3', Buffer.from(options.announce.stopped()), at(9));
      assert.ok(result.ok);
      assert.equal(result.entry.offlineSince, at(5).toISOString());
    }));

  test('a will of an older connection that arrives after the newer online is stale: counted, not stored', () =>
    withArchive(async (archive) => {
      const book = new DeviceStatusBook({ archive, logger });
      const old = deviceStatusOptions('elevator-4', 'c', 30, () => at(0));
      await book.accept('elevator-4', payload(online('elevator-4', 50)), at(51));
      const result = await book.accept('elevator-4', Buffer.from(old.will.payload), at(60));
      assert.ok(result.ok && result.outcome === 'stale');
      assert.equal((await book.latest('elevator-4'))?.status, 'online');
      assert.equal(book.counters.stale, 1);
      const archived = JSON.parse((await archive.get(deviceStatusKey('elevator-4')))!.toString()) as DeviceStatusEntry;
      assert.equal(archived.status, 'online');
    }));

  test('ordering survives a restart of the cloud side: a new book reads the archived latest first', () =>
    withArchive(async (archive) => {
      await new DeviceStatusBook({ archive, logger }).accept('elevator-5', payload(online('elevator-5', 50)), at(51));
      const restarted = new DeviceStatusBook({ archive, logger });
      const old = deviceStatusOptions('elevator-5', 'c', 30, () => at(0));
      const result = await restarted.accept('elevator-5', Buffer.from(old.will.payload), at(60));
      assert.ok(result.ok && result.outcome === 'stale');
    }));

  test('the retained copy delivered again changes nothing and writes nothing', () =>
    withArchive(async (archive) => {
      let writes = 0;
      const counting = { ...archive, get: archive.get.bind(archive), list: archive.list.bind(archive), put: async (k: string, b: Buffer | string) => ((writes += 1), archive.put(k, b)) };
      const book = new DeviceStatusBook({ archive: counting, logger });
      const message = payload(online('elevator-6', 0));
      await book.accept('elevator-6', message, at(1));
      const again = await book.accept('elevator-6', message, at(2));
      assert.ok(again.ok && again.outcome === 'unchanged');
      assert.equal(writes, 1);
    }));

  test('bad messages are refused with a reason naming the category and the culprit, and counted', () =>
    withArchive(async (archive) => {
      const book = new DeviceStatusBook({ archive, logger });
      const cases: Array<[Buffer, RegExp]> = [
        [Buffer.from('{not json'), /^status: json: /],
        [payload({ ...online('elevator-7', 0), status: 'sleeping' }), /^status: \/status must be equal to one of the allowed values/],
        [payload({ ...online('elevator-7', 0), extra: 1 }), /^status: \/ must NOT have additional properties: "extra"/],
        [payload(online('someone-else', 0)), /^mis-addressed: topic names thing "elevator-7", status says "someone-else"/],
        [payload({ ...online('elevator-7', 0), reason: 'connection-lost' }), /^status: "online" cannot have reason "connection-lost"/],
      ];
      for (const [body, expected] of cases) {
        const result = await book.accept('elevator-7', body, at(1));
        assert.equal(result.ok, false);
        assert.match((result as { reason: string }).reason, expected);
      }
      assert.equal(book.counters.invalid, cases.length);
      assert.equal(await archive.get(deviceStatusKey('elevator-7')), undefined, 'nothing invalid was stored');
    }));

  test('a failed archive write keeps the status in memory and is counted', async () => {
    const failing = { put: async () => Promise.reject(new Error('disk full')), get: async () => undefined, list: async () => [] };
    const book = new DeviceStatusBook({ archive: failing, logger });
    const result = await book.accept('elevator-8', payload(online('elevator-8', 0)), at(1));
    assert.ok(result.ok && result.outcome === 'stored');
    assert.equal(book.counters.writeFailures, 1);
    assert.equal((await book.latest('elevator-8'))?.status, 'online');
  });

  test('two instances of a group on one archive: a will of the old connection that reaches one instance after the other stored the newer online is stale', () =>
    withArchive(async (archive) => {
      const a = new DeviceStatusBook({ archive, logger, archiveIsShared: true });
      const b = new DeviceStatusBook({ archive, logger, archiveIsShared: true });
      const first = deviceStatusOptions('elevator-9', 'elevator-9-publisher', 30, () => at(0));
      assert.ok((await a.accept('elevator-9', Buffer.from(first.announce.online()), at(1))).ok);
      // The device restarts; its new connection's online reaches instance B.
      const second = deviceStatusOptions('elevator-9', 'elevator-9-publisher', 30, () => at(50));
      assert.ok((await b.accept('elevator-9', Buffer.from(second.announce.online()), at(51))).ok);
      // The old connection's will, 30 s after it was lost, reaches instance A, which stored the old online.
      const will = await a.accept('elevator-9', Buffer.from(first.will.payload), at(60));
      assert.ok(will.ok && will.outcome === 'stale', JSON.stringify(will));
      const stored = JSON.parse((await archive.get(deviceStatusKey('elevator-9')))!.toString()) as DeviceStatusEntry;
      assert.equal(stored.status, 'online', 'the archive still says online, from the newer connection');
      assert.equal(stored.message.startedAt, at(50).toISOString());

      // Without archiveIsShared, instance A trusts its memory and the old will overwrites the newer online.
      const alone = new DeviceStatusBook({ archive, logger });
      await alone.accept('elevator-10', Buffer.from(deviceStatusOptions('elevator-10', 'p', 30, () => at(0)).announce.online()), at(1));
      await b.accept('elevator-10', Buffer.from(deviceStatusOptions('elevator-10', 'p', 30, () => at(50)).announce.online()), at(51));
      const overwritten = await alone.accept('elevator-10', Buffer.from(deviceStatusOptions('elevator-10', 'p', 30, () => at(0)).will.payload), at(60));
      assert.ok(overwritten.ok && overwritten.outcome === 'stored', 'the race this option exists for');
    }));
});
