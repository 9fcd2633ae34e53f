import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { buildEnvelope } from '../../components/shared/envelope';
import { healthTopic, lossTopic } from '../../components/shared/topics';
import type { ArchiveBackend } from '../../cloud/archive';
import { ALERTS_ACTIVE_KEY, ALERTS_HISTORY_PREFIX, WebhookSink, type ActiveAlertsDocument } from '../../cloud/alert-sinks';
import type { AlertEvent } from '../../cloud/alerts';
import { fleetStatusKey, type StoredFleetStatus } from '../../cloud/fleet-status';
import { DEVICE, EPOCH, makeEnvelope, makeRecords, startHarness, STREAM, waitUntil, delay, type Harness } from '../helpers/cloud-fixtures';

type HarnessOptions = Parameters<typeof startHarness>[0];

async function withHarness(options: HarnessOptions, body: (h: Harness) => Promise<void>): Promise<void> {
  const h = await startHarness(options);
  try {
    await body(h);
  } finally {
    await h.close();
  }
}

/** A clock the test moves by hand; the ingest reads it as its `now`. */
function manualClock(): { now: () => Date; advance(ms: number): void; ms(): number } {
  let current = Date.now();
  return { now: () => new Date(current), advance: (ms) => void (current += ms), ms: () => current };
}

/** Every event the file sink recorded, in the order they were emitted. */
async function history(h: Harness): Promise<AlertEvent[]> {
  await h.ingest.alerts.flush();
  const keys = await h.archive.list(ALERTS_HISTORY_PREFIX);
  const numbered = keys.map((key) => ({ key, n: Number(/-(\d+)\.json$/.exec(key)![1]) })).sort((a, b) => a.n - b.n);
  return Promise.all(numbered.map(async ({ key }) => JSON.parse((await h.archive.get(key))!.toString('utf8')) as AlertEvent));
}

async function activeDocument(archive: ArchiveBackend): Promise<ActiveAlertsDocument> {
  return JSON.parse((await archive.get(ALERTS_ACTIVE_KEY))!.toString('utf8')) as ActiveAlertsDocument;
}

function eventsOf(events: AlertEvent[], id: string): Array<AlertEvent['state']> {
  return events.filter((e) => e.alertId === id).map((e) => e.state);
}

function healthMessage(time: Date, store: Record<string, unknown>): string {
  return JSON.stringify({
    schema: 'elevator.health/1',
    device: DEVICE,
    time: time.toISOString(),
    status: 'healthy',
    reasons: [],
    components: { StreamBuffer: { lastSeenSec: 1, metrics: { store } } },
    system: { loadAvg1m: 0.1, cpuCount: 2, memFreeBytes: 1000, memTotalBytes: 2000, diskFreeBytes: 5000 },
  });
}

/** Publishes one health message and waits until the ingest has handled it (so its receive time is the clock's now). */
async function sendHealth(h: Harness, time: Date, store: Record<string, unknown>): Promise<void> {
  const stored = h.ingest.stats().healthStored;
  await h.device.publishRaw(healthTopic(DEVICE), healthMessage(time, store));
  await waitUntil(() => h.ingest.stats().healthStored === stored + 1, 'health stored');
}

const FLEET_TOPIC = `$aws/things/${DEVICE}/greengrassv2/health/json`;

function fleetStatus(messageType: 'COMPLETE' | 'PARTIAL', components: Array<[string, string]>, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    ggcVersion: '2.14.0',
    platform: 'linux',
    architecture: 'amd64',
    thing: DEVICE,
    overallDeviceStatus: components.some(([, status]) => status === 'BROKEN' || status === 'ERRORED') ? 'UNHEALTHY' : 'HEALTHY',
    sequenceNumber: 1,
    timestamp: Date.now(),
    messageType,
    trigger: 'COMPONENT_STATUS_CHANGE',
    components: components.map(([componentName, status]) => ({ componentName, version: '1.0.0', fleetConfigArns: [], isRoot: true, status })),
    ...extra,
  });
}

describe('cloud alerts: each kind fires once and clears', () => {
  test('device-stale fires after staleAfterIntervals health intervals of silence and clears when health arrives', () => {
    const clock = manualClock();
    return withHarness({ now: clock.now, healthIntervalMs: 1000, staleAfterIntervals: 3, alertCheckIntervalMs: 20 }, async (h) => {
      const id = `device-stale:${DEVICE}`;
      await sendHealth(h, clock.now(), { backlogRecords: 0 });
      clock.advance(2900);
      await delay(100);
      assert.equal(h.ingest.alerts.isActive(id), false, 'not stale within 3 intervals');
      clock.advance(200);
      await waitUntil(() => h.ingest.alerts.isActive(id), 'device-stale firing');
      await delay(100); // several more checks while it stays stale
      clock.advance(5000);
      await delay(100);
      const firing = h.ingest.alerts.active().find((a) => a.alertId === id)!;
      assert.equal(firing.kind, 'device-stale');
      assert.equal(firing.owner, 'connectivity');
      assert.equal(firing.severity, 'critical');
      assert.equal(firing.device, DEVICE);
      assert.match(firing.message, /no health message for 3 s/);

      await sendHealth(h, clock.now(), { backlogRecords: 0 });
      assert.equal(h.ingest.alerts.isActive(id), false);
      const events = await history(h);
      assert.deepEqual(eventsOf(events, id), ['firing', 'cleared'], 'one firing event however many checks, then one cleared');
      const cleared = events.find((e) => e.alertId === id && e.state === 'cleared')!;
      assert.equal(cleared.since, firing.since);
      assert.ok(Date.parse(cleared.at) > Date.parse(cleared.since));
    });
  });

  test('backlog-growing fires when backlogRecords has not decreased for longer than backlogGrowingMs and clears when it falls', () => {
    const clock = manualClock();
    return withHarness({ now: clock.now, backlogGrowingMs: 60_000 }, async (h) => {
      const id = `backlog-growing:${DEVICE}`;
      await sendHealth(h, clock.now(), { backlogRecords: 10 });
      clock.advance(30_000);
      await sendHealth(h, clock.now(), { backlogRecords: 20 });
      clock.advance(30_000);
      await sendHealth(h, clock.now(), { backlogRecords: 20 });
      assert.equal(h.ingest.alerts.isActive(id), false, 'exactly backlogGrowingMs is not longer than it');
      clock.advance(1_000);
      await sendHealth(h, clock.now(), { backlogRecords: 25 });
      assert.equal(h.ingest.alerts.isActive(id), true);
      const firing = h.ingest.alerts.active().find((a) => a.alertId === id)!;
      assert.deepEqual([firing.owner, firing.severity, firing.details.from, firing.details.to], ['connectivity', 'warning', 10, 25]);
      clock.advance(10_000);
      await sendHealth(h, clock.now(), { backlogRecords: 30 });
      clock.advance(10_000);
      await sendHealth(h, clock.now(), { backlogRecords: 5 });
      assert.equal(h.ingest.alerts.isActive(id), false);
      assert.deepEqual(eventsOf(await history(h), id), ['firing', 'cleared']);
    });
  });

  test('backlog-growing also judges the oldest backlog age when backlogRecords is absent', () => {
    const clock = manualClock();
    return withHarness({ now: clock.now, backlogGrowingMs: 60_000 }, async (h) => {
      const id = `backlog-growing:${DEVICE}`;
      const stuckSince = clock.ms() - 5_000;
      for (let i = 0; i < 4; i += 1) {
        // The same oldest record every time: its age rises with the message time.
        await sendHealth(h, clock.now(), { streams: [{ oldestBacklogTime: stuckSince }, { oldestBacklogTime: null }] });
        clock.advance(25_000);
      }
      assert.equal(h.ingest.alerts.isActive(id), true);
      assert.equal(h.ingest.alerts.active().find((a) => a.alertId === id)!.details.figure, 'oldestBacklogAgeSec');
      await sendHealth(h, clock.now(), { streams: [{ oldestBacklogTime: clock.ms() - 1000 }] });
      assert.equal(h.ingest.alerts.isActive(id), false);
    });
  });

  test('gap-open fires once a gap outlives the grace time (when backfill is asked) and clears when it is backfilled', () =>
    // A grace of seconds, so that "not inside the grace time" holds on a loaded machine too.
    withHarness({ gapGraceMs: 2000, gapCheckIntervalMs: 50 }, async (h) => {
      const id = `gap-open:${DEVICE}:${STREAM}`;
      await h.device.publishEnvelope(makeEnvelope(1, 5));
      await h.device.publishEnvelope(makeEnvelope(11, 15));
      await h.device.waitForAck((a) => a.gaps.length > 0, 'ack with the gap');
      await delay(150);
      assert.equal(h.ingest.alerts.isActive(id), false, 'not inside the grace time');
      await waitUntil(() => h.ingest.alerts.isActive(id), 'gap-open firing');
      const firing = h.ingest.alerts.active().find((a) => a.alertId === id)!;
      assert.deepEqual(firing.details.ranges, [[6, 10]]);
      assert.equal(firing.stream, STREAM);
      assert.equal(firing.owner, 'connectivity');
      await waitUntil(() => h.ingest.stats().backfillRequests === 1, 'the backfill request');
      await delay(200);
      await h.device.publishEnvelope(makeEnvelope(6, 10));
      await h.device.waitForAck((a) => a.watermark === 15, 'watermark 15');
      await waitUntil(() => !h.ingest.alerts.isActive(id), 'gap-open cleared');
      assert.deepEqual(eventsOf(await history(h), id), ['firing', 'cleared']);
    }));

  test('gap-permanent fires on a loss report and clears itself after the hold time', () => {
    const clock = manualClock();
    return withHarness({ now: clock.now, permanentGapHoldMs: 60_000, alertCheckIntervalMs: 20 }, async (h) => {
      const id = `gap-permanent:${DEVICE}:${STREAM}`;
      await h.device.publishEnvelope(makeEnvelope(1, 5));
      await h.device.publishRaw(
        lossTopic(DEVICE),
        JSON.stringify({ schema: 'elevator.loss/1', device: DEVICE, stream: STREAM, epoch: EPOCH, ranges: [[6, 9]], reason: 'byte-cap', reportedAt: new Date().toISOString() }),
      );
      await h.device.publishEnvelope(makeEnvelope(10, 12));
      await h.device.waitForAck((a) => a.watermark === 12, 'watermark past the loss');
      const firing = h.ingest.alerts.active().find((a) => a.alertId === id);
      assert.ok(firing, 'gap-permanent firing');
      assert.deepEqual([firing.owner, firing.severity, firing.details.reason, firing.details.records], ['device', 'critical', 'byte-cap', 4]);
      clock.advance(59_000);
      await delay(100);
      assert.equal(h.ingest.alerts.isActive(id), true, 'still firing inside the hold time');
      clock.advance(1_000);
      await waitUntil(() => !h.ingest.alerts.isActive(id), 'gap-permanent cleared after the hold time');
      assert.deepEqual(eventsOf(await history(h), id), ['firing', 'cleared']);
    });
  });

  test('clock-skew fires when an envelope shows a skewed device clock and clears when the clock is back', () =>
    withHarness({}, async (h) => {
      const id = `clock-skew:${DEVICE}`;
      await h.device.publishEnvelope(buildEnvelope(DEVICE, STREAM, EPOCH, makeRecords(1, 5), new Date(Date.now() - 5 * 60_000)));
      await h.device.waitForAck((a) => a.watermark === 5, 'watermark 5');
      await h.device.publishEnvelope(buildEnvelope(DEVICE, STREAM, EPOCH, makeRecords(6, 8), new Date(Date.now() - 5 * 60_000)));
      await h.device.waitForAck((a) => a.watermark === 8, 'watermark 8');
      const firing = h.ingest.alerts.active().find((a) => a.alertId === id)!;
      assert.equal(firing.owner, 'device');
      assert.ok((firing.details.skewMs as number) < -290_000);
      await h.device.publishEnvelope(buildEnvelope(DEVICE, STREAM, EPOCH, makeRecords(9, 10), new Date()));
      await h.device.waitForAck((a) => a.watermark === 10, 'watermark 10');
      assert.equal(h.ingest.alerts.isActive(id), false);
      assert.deepEqual(eventsOf(await history(h), id), ['firing', 'cleared'], 'two skewed envelopes, one firing event');
    }));

  test('component-broken fires per component from fleet status, survives a PARTIAL that does not name it, and clears when RUNNING', () =>
    withHarness({}, async (h) => {
      const id = `component-broken:${DEVICE}:com.elevator.StreamBuffer`;
      await h.device.publishRaw(FLEET_TOPIC, fleetStatus('COMPLETE', [['com.elevator.MqttPublisher', 'RUNNING'], ['com.elevator.StreamBuffer', 'BROKEN']]));
      await waitUntil(() => h.ingest.stats().fleetStatusStored === 1, 'fleet status stored');
      const firing = h.ingest.alerts.active().find((a) => a.alertId === id)!;
      assert.deepEqual([firing.kind, firing.component, firing.owner, firing.severity], ['component-broken', 'com.elevator.StreamBuffer', 'device', 'critical']);
      assert.equal(h.ingest.alerts.isActive(`component-broken:${DEVICE}:com.elevator.MqttPublisher`), false);

      await h.device.publishRaw(FLEET_TOPIC, fleetStatus('PARTIAL', [['com.elevator.MqttPublisher', 'STOPPING']]));
      await waitUntil(() => h.ingest.stats().fleetStatusStored === 2, 'partial stored');
      assert.equal(h.ingest.alerts.isActive(id), true, 'a PARTIAL message that does not name it changes nothing');
      const stored = JSON.parse((await h.archive.get(fleetStatusKey(DEVICE)))!.toString('utf8')) as StoredFleetStatus;
      assert.equal(stored.components['com.elevator.StreamBuffer'].status, 'BROKEN');
      assert.equal(stored.components['com.elevator.MqttPublisher'].status, 'STOPPING');
      assert.equal(stored.message.messageType, 'PARTIAL');

      await h.device.publishRaw(FLEET_TOPIC, fleetStatus('PARTIAL', [['com.elevator.StreamBuffer', 'RUNNING']]));
      await waitUntil(() => !h.ingest.alerts.isActive(id), 'component-broken cleared');
      assert.deepEqual(eventsOf(await history(h), id), ['firing', 'cleared']);
    }));

  test('archive-errors (owned by the cloud) fires when a write is given up on and clears at the next successful write', () => {
    let failing = false;
    const flaky = (inner: ArchiveBackend): ArchiveBackend => ({
      put: (key, body) => (failing && key.startsWith('records/') ? Promise.reject(new Error('disk on fire')) : inner.put(key, body)),
      get: (key) => inner.get(key),
      list: (prefix) => inner.list(prefix),
    });
    return withHarness({ archiveWrapper: flaky, archiveAttempts: 1 }, async (h) => {
      const id = 'archive-errors:*';
      failing = true;
      await h.device.publishEnvelope(makeEnvelope(1, 5));
      await waitUntil(() => h.ingest.stats().archiveErrors === 1, 'archive error');
      const firing = h.ingest.alerts.active().find((a) => a.alertId === id)!;
      assert.deepEqual([firing.owner, firing.device], ['cloud', '*']);
      failing = false;
      await h.device.publishEnvelope(makeEnvelope(1, 5));
      await h.device.waitForAck((a) => a.watermark === 5, 'watermark 5 once the archive works');
      assert.equal(h.ingest.alerts.isActive(id), false);
      assert.deepEqual(eventsOf(await history(h), id), ['firing', 'cleared']);
    });
  });
});

describe('cloud alerts: fleet status validation, the active view, sinks that fail', () => {
  test('an invalid fleet status is rejected with a reason naming the field; a mis-addressed one too', () =>
    withHarness({}, async (h) => {
      await h.device.publishRaw(FLEET_TOPIC, fleetStatus('COMPLETE', [['com.elevator.StreamBuffer', 'EXPLODED']]));
      await h.device.publishRaw(FLEET_TOPIC, fleetStatus('COMPLETE', [], { thing: 'elevator-0002' }));
      await h.device.publishRaw(FLEET_TOPIC, 'not json');
      await waitUntil(() => Object.values(h.ingest.stats().rejected).reduce((a, b) => a + b, 0) === 3, 'three rejections');
      await h.ingest.idle();
      assert.deepEqual(h.ingest.stats().rejected, { 'fleet-status': 2, 'mis-addressed': 1 });
      const rejected = await Promise.all((await h.archive.list('rejected/')).map(async (key) => JSON.parse((await h.archive.get(key))!.toString('utf8')) as { reason: string; topic: string }));
      const schemaReject = rejected.find((r) => r.reason.includes('/components/0/status'));
      assert.ok(schemaReject, JSON.stringify(rejected.map((r) => r.reason)));
      assert.match(schemaReject.reason, /^fleet-status: .*EXPLODED|^fleet-status: .*allowed values/);
      assert.equal(schemaReject.topic, FLEET_TOPIC);
      assert.equal(h.ingest.stats().fleetStatusStored, 0);
      assert.equal(await h.archive.get(fleetStatusKey(DEVICE)), undefined);
      assert.equal(h.ingest.alerts.active().length, 0);
    }));

  test('_alerts/active.json lists exactly the firing alerts, and a restarted ingest still clears them', () =>
    withHarness({}, async (h) => {
      await h.device.publishRaw(FLEET_TOPIC, fleetStatus('COMPLETE', [['com.elevator.StreamBuffer', 'BROKEN'], ['com.elevator.MqttPublisher', 'BROKEN']]));
      await h.device.publishEnvelope(buildEnvelope(DEVICE, STREAM, EPOCH, makeRecords(1, 2), new Date(Date.now() + 10 * 60_000)));
      await h.device.waitForAck((a) => a.watermark === 2, 'watermark 2');
      await waitUntil(() => h.ingest.stats().fleetStatusStored === 1, 'fleet status stored');
      await h.ingest.alerts.flush();
      const document = await activeDocument(h.archive);
      assert.deepEqual(Object.keys(document).sort(), ['alerts', 'updatedAt']);
      assert.ok(!Number.isNaN(Date.parse(document.updatedAt)));
      assert.deepEqual(document.alerts.map((a) => a.alertId).sort(), [
        `clock-skew:${DEVICE}`,
        `component-broken:${DEVICE}:com.elevator.MqttPublisher`,
        `component-broken:${DEVICE}:com.elevator.StreamBuffer`,
      ]);
      for (const alert of document.alerts) {
        assert.equal(alert.state, 'firing');
        assert.deepEqual(Object.keys(alert).filter((k) => !['stream', 'component'].includes(k)).sort(), ['alertId', 'at', 'details', 'device', 'kind', 'message', 'owner', 'severity', 'since', 'state']);
      }

      await h.restartIngest();
      assert.equal(h.ingest.alerts.active().length, 3, 'restored from active.json');
      await h.device.publishRaw(FLEET_TOPIC, fleetStatus('COMPLETE', [['com.elevator.StreamBuffer', 'RUNNING']]));
      await waitUntil(() => h.ingest.alerts.active().length === 1, 'both component alerts cleared');
      await h.ingest.alerts.flush();
      const after = await activeDocument(h.archive);
      assert.deepEqual(after.alerts.map((a) => a.alertId), [`clock-skew:${DEVICE}`]);
      const cleared = (await history(h)).filter((e) => e.state === 'cleared').map((e) => e.alertId).sort();
      assert.deepEqual(cleared, [`component-broken:${DEVICE}:com.elevator.MqttPublisher`, `component-broken:${DEVICE}:com.elevator.StreamBuffer`]);
    }));

  test('a webhook that fails is retried, counted and logged, and ingest carries on acking meanwhile', async () => {
    const requests: string[] = [];
    const server: Server = createServer((request: IncomingMessage, response) => {
      let body = '';
      request.on('data', (chunk) => (body += chunk));
      request.on('end', () => {
        requests.push(body);
        response.writeHead(503).end('down for maintenance');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/alerts`;
    const webhook = new WebhookSink({ url, attempts: 3, retryBaseMs: 20, timeoutMs: 1000 });
    try {
      await withHarness({ alertSinks: [webhook] }, async (h) => {
        await h.device.publishEnvelope(buildEnvelope(DEVICE, STREAM, EPOCH, makeRecords(1, 3), new Date(Date.now() - 5 * 60_000)));
        await h.device.waitForAck((a) => a.watermark === 3, 'ack while the webhook is failing');
        await h.device.publishEnvelope(makeEnvelope(4, 6));
        await h.device.waitForAck((a) => a.watermark === 6, 'next ack');
        await h.ingest.alerts.flush();
        assert.equal(requests.length, 6, 'firing and cleared events, three attempts each');
        assert.equal((JSON.parse(requests[0]) as AlertEvent).kind, 'clock-skew');
        assert.deepEqual(webhook.metrics, { delivered: 0, failedAttempts: 6, failed: 2 });
        assert.deepEqual(h.ingest.stats().alertSinkFailures, { webhook: 2 });
        assert.ok(h.logs.some((e) => e.level === 'warn' && e.sink === 'webhook' && /HTTP 503/.test(String(e.error))));
        assert.equal(h.ingest.stats().recordsArchived, 6);
      });
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
