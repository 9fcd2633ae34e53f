import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { ArchiveBackend } from '../../cloud/archive';
import { CHECKER_STATUS_KEY, gapKey, healthKey, instanceStatusKey, STATUS_KEY } from '../../cloud/keys';
import { ACTIVE_ALERTS_KEY, buildFleetModel, FleetSampler, GapCache, TimeSeries, type FleetModel, type IngestView } from '../../cloud/fleet-view/model';
import { withArchive } from '../helpers/cloud-fixtures';
import { deviceStatusKey } from '../../cloud/device-status';

const NOW = new Date('2025-06-01T12:00:00.000Z');
const secondsBefore = (sec: number): string => new Date(NOW.getTime() - sec * 1000).toISOString();

function healthObject(device: string, status: string, reasons: string[], extra: { receivedSecAgo?: number; backlog?: number; oldestBacklogSecAgo?: number | null } = {}): string {
  const time = secondsBefore(extra.receivedSecAgo ?? 2);
  const oldest = extra.oldestBacklogSecAgo === undefined || extra.oldestBacklogSecAgo === null ? null : Date.parse(time) - extra.oldestBacklogSecAgo * 1000;
  return JSON.stringify({
    device,
    receivedAt: time,
    health: {
      schema: 'elevator.health/1',
      device,
      time,
      status,
      reasons,
      components: {
        SensorAcquisition: { lastSeenSec: 1, metrics: { sampled: 10 } },
        StreamBuffer: { lastSeenSec: 0, metrics: { store: { backlogRecords: extra.backlog ?? 0, streams: [{ stream: 'motor', oldestBacklogTime: oldest }] } } },
        MqttPublisher: { lastSeenSec: reasons.some((r) => r.startsWith('MqttPublisher:')) ? 16 : 1, metrics: {} },
      },
      system: { loadAvg1m: 0.1, cpuCount: 2, memFreeBytes: 1, memTotalBytes: 2, diskFreeBytes: 3 },
    },
  });
}

function ingestStatus(recordsArchived: number, updatedAt: string, startedAt = secondsBefore(600)): string {
  return JSON.stringify({
    received: 5,
    accepted: 5,
    recordsArchived,
    duplicatesDropped: 1,
    rejected: { schema: 2, checksum: 1 },
    invalidRecords: { motor: 4 },
    clockSkewFlags: 1,
    devicesSkewed: ['elevator-b'],
    backfillRequests: 3,
    archiveErrors: 0,
    epochLoss: 7,
    lossReports: 1,
    app: 'elevator',
    connected: true,
    startedAt,
    updatedAt,
  });
}


describe('buildFleetModel', () => {
  test('an empty (or not yet created) archive is an empty fleet, not an error', () =>
    withArchive(async (archive) => {
      const model = await buildFleetModel(archive, NOW);
      assert.deepEqual(model.devices, []);
      assert.equal(model.ingest, null);
      assert.deepEqual(model.alerts, []);
      assert.deepEqual(model.gaps, []);
      assert.deepEqual(model.problems, []);
      assert.equal(model.generatedAt, NOW.toISOString());
    }));

  test('shows every device with its status and reasons, the ingest counters, alerts in order of urgency and the newest gaps', () =>
    withArchive(async (archive) => {
      await archive.put(healthKey('elevator-a'), healthObject('elevator-a', 'healthy', [], { backlog: 0 }));
      await archive.put(
        healthKey('elevator-b'),
        healthObject('elevator-b', 'degraded', ['MqttPublisher: no heartbeat for 3 intervals (15000 ms)'], { backlog: 120, oldestBacklogSecAgo: 42 }),
      );
      // A name with ':' is stored under an encoded key segment and must come back decoded.
      await archive.put(healthKey('site:7'), healthObject('site:7', 'unhealthy', ['disk free 10 bytes is under 100'], { receivedSecAgo: 400 }));
      await archive.put(STATUS_KEY, ingestStatus(1234, secondsBefore(1)));
      await archive.put(
        ACTIVE_ALERTS_KEY,
        JSON.stringify({
          updatedAt: secondsBefore(1),
          alerts: [
            alert({ alertId: 'a1', severity: 'warning', state: 'cleared', at: secondsBefore(50) }),
            alert({ alertId: 'a2', severity: 'warning', state: 'firing', at: secondsBefore(40) }),
            alert({ alertId: 'a3', severity: 'critical', state: 'firing', at: secondsBefore(30), owner: 'connectivity' }),
          ],
        }),
      );
      await archive.put(gapKey('elevator-b', 'motor', 'ep1', 5, 9), JSON.stringify({ reason: 'byte-cap', source: 'loss-report', receivedAt: secondsBefore(100) }));
      await archive.put(gapKey('elevator-b', 'run', 'ep1', 1, 1), JSON.stringify({ reason: 'epoch-replaced', source: 'epoch-report', receivedAt: secondsBefore(10) }));
      await archive.put(gapKey('elevator-a', 'motor', 'ep0', 20, 29), JSON.stringify({ reason: 'age-cap', source: 'loss-report', receivedAt: secondsBefore(300) }));

      const model = await buildFleetModel(archive, NOW, { maxGaps: 2 });

      assert.deepEqual(model.problems, []);
      assert.deepEqual(
        model.devices.map((d) => [d.device, d.status, d.reasons]),
        [
          ['elevator-a', 'healthy', []],
          ['elevator-b', 'degraded', ['MqttPublisher: no heartbeat for 3 intervals (15000 ms)']],
          ['site:7', 'unhealthy', ['disk free 10 bytes is under 100']],
        ],
      );
      const b = model.devices[1];
      assert.equal(b.backlogRecords, 120);
      assert.equal(b.backlogAgeSec, 42);
      assert.equal(b.clockSkewed, true, 'devicesSkewed names elevator-b');
      assert.equal(b.healthStale, false);
      assert.deepEqual(
        b.components.map((c) => [c.name, c.heartbeat, c.lifecycle]),
        [
          ['MqttPublisher', 'stale', null],
          ['SensorAcquisition', 'alive', null],
          ['StreamBuffer', 'alive', null],
        ],
      );
      assert.equal(model.devices[0].backlogAgeSec, 0, 'an empty backlog has age 0');
      assert.equal(model.devices[2].healthStale, true, 'a health message 400 s old is stale');
      assert.equal(model.devices[2].healthAgeSec, 400);

      assert.ok(model.ingest);
      assert.equal(model.ingest.recordsArchived, 1234);
      assert.equal(model.ingest.rejectedTotal, 3);
      assert.equal(model.ingest.invalidTotal, 4);
      assert.equal(model.ingest.backfillRequests, 3);
      assert.equal(model.ingest.clockSkewFlags, 1);
      assert.equal(model.ingest.stale, false);

      assert.deepEqual(
        model.alerts.map((a) => a.alertId),
        ['a3', 'a2', 'a1'],
        'firing critical, then firing warning, then cleared',
      );
      assert.equal(model.alerts[0].owner, 'connectivity');

      assert.equal(model.gapCount, 3);
      assert.equal(model.gapRecords, 5 + 1 + 10);
      assert.deepEqual(
        model.gaps.map((g) => [g.device, g.stream, g.seqFrom, g.seqTo, g.reason]),
        [
          ['elevator-b', 'run', 1, 1, 'epoch-replaced'],
          ['elevator-b', 'motor', 5, 9, 'byte-cap'],
        ],
      );
    }));

  test('fleet status adds lifecycle states and versions to the heartbeat view, and a device known only from it is unknown', () =>
    withArchive(async (archive) => {
      await archive.put(healthKey('elevator-a'), healthObject('elevator-a', 'healthy', []));
      await archive.put(
        'fleet-status/elevator-a/latest.json',
        JSON.stringify({
          thing: 'elevator-a',
          overallDeviceStatus: 'UNHEALTHY',
          timestamp: NOW.getTime() - 5000,
          components: [
            { componentName: 'com.elevator.MqttPublisher', version: '1.2.0', status: 'BROKEN' },
            { componentName: 'aws.greengrass.Nucleus', version: '2.12.0', status: 'RUNNING' },
          ],
        }),
      );
      // As the ingest stores it (cloud/fleet-status.ts): the last message, and every component's merged state.
      await archive.put(
        'fleet-status/elevator-z/latest.json',
        JSON.stringify({
          device: 'elevator-z',
          receivedAt: NOW.toISOString(),
          message: { thing: 'elevator-z', overallDeviceStatus: 'UNHEALTHY', timestamp: NOW.getTime(), messageType: 'PARTIAL', components: [{ componentName: 'com.elevator.HealthReporter', version: '0.1.0', status: 'BROKEN' }] },
          components: {
            'com.elevator.HealthReporter': { status: 'BROKEN', version: '0.1.0', reportedAt: NOW.toISOString() },
            'com.elevator.StreamBuffer': { status: 'RUNNING', version: '0.1.0', reportedAt: NOW.toISOString() },
          },
        }),
      );
      const model = await buildFleetModel(archive, NOW);
      assert.deepEqual(model.problems, []);
      const a = model.devices.find((d) => d.device === 'elevator-a')!;
      assert.equal(a.overallDeviceStatus, 'UNHEALTHY');
      const publisher = a.components.find((c) => c.name === 'MqttPublisher')!;
      assert.deepEqual([publisher.componentName, publisher.lifecycle, publisher.version, publisher.heartbeat], ['com.elevator.MqttPublisher', 'BROKEN', '1.2.0', 'alive']);
      const nucleus = a.components.find((c) => c.name === 'Nucleus')!;
      assert.deepEqual([nucleus.lifecycle, nucleus.heartbeat], ['RUNNING', null]);
      const z = model.devices.find((d) => d.device === 'elevator-z')!;
      assert.equal(z.status, 'unknown', 'no health message');
      assert.equal(z.overallDeviceStatus, 'UNHEALTHY');
      assert.equal(z.fleetStatusTime, NOW.toISOString());
      assert.deepEqual(
        z.components.map((c) => [c.name, c.lifecycle]),
        [
          ['HealthReporter', 'BROKEN'],
          ['StreamBuffer', 'RUNNING'],
        ],
        'the merged component states, not only the last message\'s',
      );
    }));

  test('malformed files become problems in the model, and everything readable is still shown', () =>
    withArchive(async (archive) => {
      await archive.put(healthKey('good'), healthObject('good', 'healthy', []));
      await archive.put(healthKey('garbled'), '{"device": "garbled", "health": ');
      await archive.put(healthKey('wrong-status'), JSON.stringify({ device: 'wrong-status', receivedAt: NOW.toISOString(), health: { status: 'fine', reasons: [] } }));
      await archive.put(STATUS_KEY, 'not json at all');
      await archive.put(ACTIVE_ALERTS_KEY, JSON.stringify({ updatedAt: NOW.toISOString(), alerts: [alert({ alertId: 'ok' }), { alertId: 'bad', owner: 'someone' }] }));
      await archive.put(gapKey('good', 'motor', 'e', 1, 2), '[');
      await archive.put('fleet-status/good/latest.json', JSON.stringify({ hello: 'world' }));

      const model = await buildFleetModel(archive, NOW);

      assert.deepEqual(
        model.devices.map((d) => [d.device, d.status]),
        [
          ['garbled', 'unknown'],
          ['good', 'healthy'],
          ['wrong-status', 'unknown'],
        ],
      );
      assert.deepEqual(
        model.alerts.map((a) => a.alertId),
        ['ok'],
      );
      assert.equal(model.ingest, null);
      assert.deepEqual(model.gaps, []);
      const keys = model.problems.map((p) => p.key).sort();
      assert.deepEqual(keys, [ACTIVE_ALERTS_KEY, STATUS_KEY, 'fleet-status/good/latest.json', gapKey('good', 'motor', 'e', 1, 2), healthKey('garbled'), healthKey('wrong-status')].sort());
      assert.match(model.problems.find((p) => p.key === healthKey('wrong-status'))!.problem, /unknown status "fine"/);
      assert.match(model.problems.find((p) => p.key === ACTIVE_ALERTS_KEY)!.problem, /alert #1/);
    }));

  test('the device status the ingest keeps (online, or offline from a last will) shows on the device; a malformed one is a problem', () =>
    withArchive(async (archive) => {
      await archive.put(healthKey('elevator-a'), healthObject('elevator-a', 'healthy', []));
      await archive.put(deviceStatusKey('elevator-a'), JSON.stringify({ device: 'elevator-a', status: 'offline', reason: 'connection-lost', offlineSince: secondsBefore(40), receivedAt: secondsBefore(10) }));
      await archive.put(deviceStatusKey('elevator-b'), JSON.stringify({ device: 'elevator-b', status: 'online', reason: 'connected', offlineSince: null, receivedAt: secondsBefore(5) }));
      await archive.put(deviceStatusKey('elevator-c'), JSON.stringify({ device: 'elevator-c', status: 'sleeping' }));
      const model = await buildFleetModel(archive, NOW);
      const byDevice = Object.fromEntries(model.devices.map((d) => [d.device, d.connection]));
      assert.deepEqual(byDevice['elevator-a'], { status: 'offline', reason: 'connection-lost', offlineSince: secondsBefore(40), receivedAt: secondsBefore(10) });
      assert.deepEqual(byDevice['elevator-b'], { status: 'online', reason: 'connected', offlineSince: null, receivedAt: secondsBefore(5) });
      assert.equal(byDevice['elevator-c'], null, 'a device known only from a bad status is listed, without a connection');
      assert.equal(model.devices.find((d) => d.device === 'elevator-b')!.status, 'unknown', 'no health yet');
      assert.deepEqual(model.problems.map((p) => p.key), [deviceStatusKey('elevator-c')]);
    }));

  test('with a shared-subscription group: each instance with its own state, their sums as the ingest, a dead one flagged; the checker\'s last pass', () =>
    withArchive(async (archive) => {
      await archive.put(instanceStatusKey('ingest-a'), ingestStatus(100, secondsBefore(1)));
      await archive.put(instanceStatusKey('ingest:b'), ingestStatus(50, secondsBefore(1)));
      await archive.put(instanceStatusKey('ingest-c'), ingestStatus(7, secondsBefore(300)));
      await archive.put(
        CHECKER_STATUS_KEY,
        JSON.stringify({ passes: 12, passErrors: 1, lastPassAt: secondsBefore(3), streams: 4, recordsArchived: 157, openGapRecords: 2, permanentGapRecords: { 'byte-cap': 3, 'age-cap': 4 }, epochLoss: 0, acksSent: 30, ackErrors: 0, backfillRequests: 2, archiveErrors: 0, updatedAt: secondsBefore(3) }),
      );
      const model = await buildFleetModel(archive, NOW);
      assert.deepEqual(model.problems, []);
      assert.deepEqual(
        model.ingestInstances.map((i) => [i.instance, i.recordsArchived, i.stale]),
        [['ingest-a', 100, false], ['ingest-c', 7, true], ['ingest:b', 50, false]],
      );
      assert.equal(model.ingest?.recordsArchived, 157);
      assert.equal(model.ingestSource, 'group');
      assert.equal(model.ingest?.stale, false, 'the group is live while one instance is');
      assert.deepEqual(model.ingest?.rejected, { schema: 6, checksum: 3 });
      assert.equal(model.ingest?.rejectedTotal, 9);
      assert.equal(model.checker?.stale, false);
      assert.equal(model.checker?.passes, 12);
      assert.equal(model.checker?.permanentGapRecords, 7);
      assert.equal(model.checker?.openGapRecords, 2);

      const later = await buildFleetModel(archive, new Date(NOW.getTime() + 120_000));
      assert.equal(later.ingest?.stale, true, 'every instance stale: the group is');
      assert.equal(later.checker?.stale, true, 'no pass for two minutes');

      await archive.put(STATUS_KEY, ingestStatus(9, secondsBefore(1)));
      const both = await buildFleetModel(archive, NOW);
      assert.equal(both.ingest?.recordsArchived, 9, 'a single ingest\'s status wins over the sums');
      assert.equal(both.ingestSource, 'single');

      await archive.put(CHECKER_STATUS_KEY, '[1]');
      assert.deepEqual((await buildFleetModel(archive, NOW)).problems, [{ key: CHECKER_STATUS_KEY, problem: 'checker status is not an object' }]);
    }));

  test('an archive that cannot be read is reported, not thrown', async () => {
    const broken: ArchiveBackend = {
      put: async () => undefined,
      get: async () => {
        throw new Error('EACCES: permission denied');
      },
      list: async () => {
        throw new Error('EACCES: permission denied');
      },
    };
    const model = await buildFleetModel(broken, NOW);
    assert.deepEqual(model.devices, []);
    assert.ok(model.problems.some((p) => p.key === 'health/' && /permission denied/.test(p.problem)), JSON.stringify(model.problems));
    assert.ok(model.problems.some((p) => p.key === STATUS_KEY && /archive read failed/.test(p.problem)), JSON.stringify(model.problems));
  });

  test('gap bodies are read once and then served from the cache', () =>
    withArchive(async (archive, root) => {
      await archive.put(gapKey('d', 's', 'e', 1, 1), JSON.stringify({ reason: 'byte-cap', receivedAt: NOW.toISOString() }));
      let gets = 0;
      const counting: ArchiveBackend = { put: (k, b) => archive.put(k, b), list: (p) => archive.list(p), get: (k) => ((gets += k.startsWith('gaps/') ? 1 : 0), archive.get(k)) };
      const cache = new GapCache();
      await buildFleetModel(counting, NOW, { gapCache: cache });
      const second = await buildFleetModel(counting, NOW, { gapCache: cache });
      assert.equal(gets, 1);
      assert.equal(second.gaps[0].reason, 'byte-cap');
      // A removed object leaves the cache as well.
      await rm(join(root, 'gaps'), { recursive: true });
      await buildFleetModel(counting, NOW, { gapCache: cache });
      assert.equal(cache.entries.size, 0);
    }));
});

describe('TimeSeries', () => {
  test('keeps only the points inside its window, and at most maxPoints', () => {
    const series = new TimeSeries<{ t: number; v: number }>(10_000, 5);
    for (let t = 0; t <= 20_000; t += 1000) series.add({ t, v: t });
    assert.deepEqual(
      series.points().map((p) => p.t),
      [16_000, 17_000, 18_000, 19_000, 20_000],
    );
    const wide = new TimeSeries<{ t: number }>(3000);
    for (let t = 0; t <= 10_000; t += 1000) wide.add({ t });
    assert.deepEqual(
      wide.points().map((p) => p.t),
      [7000, 8000, 9000, 10_000],
    );
  });
});

describe('FleetSampler', () => {
  function modelWith(ingest: Partial<IngestView> | null, backlogs: Array<number | null> = []): FleetModel {
    return {
      generatedAt: NOW.toISOString(),
      devices: backlogs.map((backlogRecords, i) => ({ device: `d${i}`, backlogRecords, backlogAgeSec: backlogRecords === null ? null : i * 10 }) as FleetModel['devices'][number]),
      ingest: ingest === null ? null : ({ stale: false, startedAt: 'S1', ...ingest } as IngestView),
      ingestSource: ingest === null ? null : 'single',
      ingestInstances: [],
      checker: null,
      alerts: [],
      alertsUpdatedAt: null,
      gaps: [],
      gapCount: 0,
      gapRecords: 0,
      problems: [],
    };
  }

  test('throughput comes from the ingest counter over the ingest\'s own timestamps, and resets with a restart', () => {
    const sampler = new FleetSampler(60_000);
    const at = (sec: number): string => new Date(NOW.getTime() + sec * 1000).toISOString();
    assert.equal(sampler.sample(modelWith({ recordsArchived: 100, updatedAt: at(0) }), 0).archivedPerSec, null, 'one reading is no rate');
    assert.equal(sampler.sample(modelWith({ recordsArchived: 150, updatedAt: at(2) }), 1000).archivedPerSec, 25);
    assert.equal(sampler.sample(modelWith({ recordsArchived: 150, updatedAt: at(2) }), 2000).archivedPerSec, 25, 'no new status: the last rate holds');
    assert.equal(sampler.sample(modelWith({ recordsArchived: 150, updatedAt: at(3) }), 3000).archivedPerSec, 0);
    assert.equal(sampler.sample(modelWith({ recordsArchived: 3, updatedAt: at(4), startedAt: 'S2' }), 4000).archivedPerSec, null, 'a restarted ingest counts from 0');
    assert.equal(sampler.sample(modelWith({ recordsArchived: 13, updatedAt: at(5), startedAt: 'S2' }), 5000).archivedPerSec, 10);
    assert.equal(sampler.sample(modelWith({ recordsArchived: 20, updatedAt: at(6), startedAt: 'S2', stale: true }), 6000).archivedPerSec, null, 'a stale ingest has no rate');
    assert.equal(sampler.sample(modelWith(null), 7000).archivedPerSec, null);
    assert.equal(sampler.series.length, 8);
  });

  test('backlog is the fleet\'s sum, its age the oldest; no device with data gives null, not 0', () => {
    const sampler = new FleetSampler(60_000);
    const point = sampler.sample(modelWith(null, [5, null, 7]), 0);
    assert.equal(point.backlogRecords, 12);
    assert.equal(point.backlogAgeSec, 20);
    const empty = sampler.sample(modelWith(null, [null]), 1000);
    assert.equal(empty.backlogRecords, null);
    assert.equal(empty.backlogAgeSec, null);
  });
});

function alert(fields: Record<string, unknown>): Record<string, unknown> {
  return {
    alertId: 'x',
    kind: 'heartbeat-missing',
    owner: 'device',
    severity: 'warning',
    state: 'firing',
    device: 'elevator-b',
    component: 'MqttPublisher',
    message: 'no heartbeat',
    since: secondsBefore(60),
    at: secondsBefore(1),
    details: {},
    ...fields,
  };
}
