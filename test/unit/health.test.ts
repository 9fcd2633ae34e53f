import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import winston from 'winston';
import { HealthReporter, type HealthConfig, type HealthMessage, type Heartbeat } from '../../components/health-reporter/reporter';
import { scheduleOffsetMs } from '../../components/shared/schedule';
import healthSchema from '../../components/shared/schemas/health.v1.schema.json';
import { compileValidator } from '../../components/shared/validation';

function captureLogger(): { logger: winston.Logger; entries: Array<{ level: string; message: string; [key: string]: unknown }> } {
  const entries: Array<{ level: string; message: string }> = [];
  const sink = new Writable({
    objectMode: true,
    write(chunk: { level: string; message: string }, _encoding, done) {
      entries.push(chunk);
      done();
    },
  });
  return { logger: winston.createLogger({ level: 'debug', transports: [new winston.transports.Stream({ stream: sink })] }), entries };
}

const COMPONENTS = ['SensorAcquisition', 'StreamBuffer', 'MqttPublisher'];

const CONFIG: HealthConfig = {
  publishIntervalMs: 60_000,
  expectedComponents: COMPONENTS,
  heartbeatIntervalMs: 1000,
  missedHeartbeats: 3,
  backlogAgeDegradedSec: 300,
  diskFreeMinBytes: 0,
  clockUnsyncedDegrades: true,
};

interface Setup {
  reporter: HealthReporter;
  published: HealthMessage[];
}

function reporterWith(config: Partial<HealthConfig> = {}, storeDir?: string, publish?: (m: HealthMessage) => Promise<void>): Setup {
  const published: HealthMessage[] = [];
  const reporter = new HealthReporter(
    'elevator-0001',
    { ...CONFIG, ...config },
    storeDir,
    publish ??
      (async (message) => {
        published.push(message);
      }),
    captureLogger().logger,
  );
  return { reporter, published };
}

function heartbeat(component: string, metrics: Record<string, unknown> = { ok: true }): Heartbeat {
  return { component, time: new Date().toISOString(), uptimeSec: 10, metrics };
}

function bufferMetrics(oldestTimes: Array<number | null>): Record<string, unknown> {
  return { store: { streams: oldestTimes.map((t, i) => ({ stream: `s${i}`, oldestBacklogTime: t })) } };
}

const T = 1_750_000_000_000;

describe('HealthReporter: the store refusing the acquisition\'s appends', () => {
  const acquisition = (appendFailures: number, droppedOverflow: number, pending: number) => heartbeat('SensorAcquisition', { appendFailures, droppedOverflow, pending });
  const others = (reporter: HealthReporter, at: number) => {
    reporter.onHeartbeat(heartbeat('StreamBuffer'), at);
    reporter.onHeartbeat(heartbeat('MqttPublisher'), at);
  };

  test('degraded while appends fail between two heartbeats, naming the samples held in memory; healthy again when they stop', () => {
    const { reporter } = reporterWith();
    others(reporter, T);
    reporter.onHeartbeat(acquisition(2, 0, 0), T);
    assert.equal(reporter.evaluate(T).status, 'healthy', 'failures from before this reporter started say nothing about now');
    reporter.onHeartbeat(acquisition(7, 0, 340), T + 1000);
    const failing = reporter.evaluate(T + 1000);
    assert.equal(failing.status, 'degraded');
    assert.deepEqual(failing.reasons, ['SensorAcquisition: the store refused 5 appends since its previous heartbeat; 340 samples wait in memory']);
    reporter.onHeartbeat(acquisition(7, 0, 0), T + 2000);
    assert.equal(reporter.evaluate(T + 2000).status, 'healthy');
  });

  test('unhealthy when samples were dropped beyond maxPendingRecords; a restarted acquisition counts from 0', () => {
    const { reporter } = reporterWith();
    others(reporter, T);
    reporter.onHeartbeat(acquisition(10, 0, 100), T);
    reporter.onHeartbeat(acquisition(12, 30, 100), T + 1000);
    const dropping = reporter.evaluate(T + 1000);
    assert.equal(dropping.status, 'unhealthy');
    assert.deepEqual(dropping.reasons, ['SensorAcquisition: 30 samples dropped since its previous heartbeat: the store refused them beyond maxPendingRecords']);
    reporter.onHeartbeat(acquisition(1, 0, 5), T + 2000);
    assert.equal(reporter.evaluate(T + 2000).status, 'degraded', 'after a restart, its 1 failure is new');
    // A restart that failed as often as the process before it: the shorter uptime tells.
    reporter.onHeartbeat({ ...acquisition(4, 0, 5), uptimeSec: 50 }, T + 3000);
    others(reporter, T + 4000);
    reporter.onHeartbeat({ ...acquisition(4, 0, 9), uptimeSec: 2 }, T + 4000);
    assert.deepEqual(reporter.evaluate(T + 4000).reasons, ['SensorAcquisition: the store refused 4 appends since its previous heartbeat; 9 samples wait in memory']);
  });
});

describe('HealthReporter: samples a previous acquisition process lost', () => {
  test('unhealthy for the first heartbeat of a process that found a loss journal, naming the count; healthy after', () => {
    const { reporter } = reporterWith();
    const acquisition = (lostByPreviousProcess: number, uptimeSec: number) => ({ ...heartbeat('SensorAcquisition', { appendFailures: 0, droppedOverflow: 0, pending: 0, lostByPreviousProcess }), uptimeSec });
    const others = (at: number) => {
      reporter.onHeartbeat(heartbeat('StreamBuffer'), at);
      reporter.onHeartbeat(heartbeat('MqttPublisher'), at);
    };
    others(T);
    reporter.onHeartbeat(acquisition(0, 100), T);
    assert.equal(reporter.evaluate(T).status, 'healthy');
    others(T + 1000);
    reporter.onHeartbeat(acquisition(37, 1), T + 1000); // restarted: a shorter uptime
    const lost = reporter.evaluate(T + 1000);
    assert.equal(lost.status, 'unhealthy');
    assert.deepEqual(lost.reasons, ['SensorAcquisition: 37 samples held in memory were lost when its previous process ended (the cloud gets them as acquisition-overflow)']);
    others(T + 2000);
    reporter.onHeartbeat(acquisition(37, 2), T + 2000);
    assert.equal(reporter.evaluate(T + 2000).status, 'healthy', 'said once: the count does not grow in the same process');
  });

  test('a reporter that starts with the acquisition (a reboot) still says it, from the first heartbeat it sees', () => {
    const { reporter } = reporterWith();
    reporter.onHeartbeat(heartbeat('StreamBuffer'), T);
    reporter.onHeartbeat(heartbeat('MqttPublisher'), T);
    reporter.onHeartbeat({ ...heartbeat('SensorAcquisition', { appendFailures: 0, droppedOverflow: 0, pending: 0, lostByPreviousProcess: 12 }), uptimeSec: 3 }, T);
    assert.deepEqual(reporter.evaluate(T).reasons, ['SensorAcquisition: 12 samples held in memory were lost when its previous process ended (the cloud gets them as acquisition-overflow)']);
  });

  test('a reporter restarted alone does not announce a loss its acquisition found long ago', () => {
    const { reporter } = reporterWith();
    reporter.onHeartbeat(heartbeat('StreamBuffer'), T);
    reporter.onHeartbeat(heartbeat('MqttPublisher'), T);
    reporter.onHeartbeat({ ...heartbeat('SensorAcquisition', { appendFailures: 0, droppedOverflow: 0, pending: 0, lostByPreviousProcess: 12 }), uptimeSec: 7200 }, T);
    assert.equal(reporter.evaluate(T).status, 'healthy');
  });
});

describe('HealthReporter: heartbeats', () => {
  test('healthy when every expected component sent a heartbeat within heartbeatIntervalMs * missedHeartbeats', () => {
    const { reporter } = reporterWith();
    for (const name of COMPONENTS) reporter.onHeartbeat(heartbeat(name, { n: name }), T);
    const message = reporter.evaluate(T + 3000);
    assert.equal(message.status, 'healthy');
    assert.deepEqual(message.reasons, []);
    assert.equal(message.schema, 'elevator.health/1');
    assert.equal(message.device, 'elevator-0001');
    assert.equal(message.time, new Date(T + 3000).toISOString());
    assert.deepEqual(message.components, {
      SensorAcquisition: { lastSeenSec: 3, metrics: { n: 'SensorAcquisition' } },
      StreamBuffer: { lastSeenSec: 3, metrics: { n: 'StreamBuffer' } },
      MqttPublisher: { lastSeenSec: 3, metrics: { n: 'MqttPublisher' } },
    });
  });

  test('degraded, naming the component, when its last heartbeat is older than heartbeatIntervalMs * missedHeartbeats', () => {
    const { reporter } = reporterWith();
    reporter.onHeartbeat(heartbeat('SensorAcquisition'), T);
    reporter.onHeartbeat(heartbeat('StreamBuffer'), T);
    reporter.onHeartbeat(heartbeat('MqttPublisher'), T - 1);
    const message = reporter.evaluate(T + 3000);
    assert.equal(message.status, 'degraded');
    assert.deepEqual(message.reasons, ['MqttPublisher: no heartbeat for 3 intervals (3000 ms)']);
  });

  test('a newer heartbeat from the same component clears the degradation', () => {
    const { reporter } = reporterWith();
    for (const name of COMPONENTS) reporter.onHeartbeat(heartbeat(name), T);
    assert.equal(reporter.evaluate(T + 5000).status, 'degraded');
    reporter.onHeartbeat(heartbeat('SensorAcquisition'), T + 5000);
    reporter.onHeartbeat(heartbeat('StreamBuffer'), T + 5000);
    reporter.onHeartbeat(heartbeat('MqttPublisher'), T + 5000);
    assert.equal(reporter.evaluate(T + 5000).status, 'healthy');
  });

  test('degraded, naming the component, when an expected component never sent a heartbeat', () => {
    const { reporter } = reporterWith();
    reporter.onHeartbeat(heartbeat('SensorAcquisition'), T);
    reporter.onHeartbeat(heartbeat('MqttPublisher'), T);
    const message = reporter.evaluate(T);
    assert.equal(message.status, 'degraded');
    assert.equal(message.reasons.length, 1);
    assert.match(message.reasons[0], /^StreamBuffer: /);
    assert.deepEqual(message.components.StreamBuffer, { lastSeenSec: null, metrics: null });
  });

  test('a heartbeat from a component that is not expected neither helps nor hurts', () => {
    const { reporter } = reporterWith({ expectedComponents: ['SensorAcquisition'] });
    reporter.onHeartbeat(heartbeat('SomethingElse'), T);
    assert.equal(reporter.evaluate(T).status, 'degraded');
    reporter.onHeartbeat(heartbeat('SensorAcquisition'), T);
    const message = reporter.evaluate(T);
    assert.equal(message.status, 'healthy');
    assert.deepEqual(Object.keys(message.components), ['SensorAcquisition']);
  });

  test('invalid heartbeats are counted and ignored', () => {
    const { reporter } = reporterWith();
    for (const invalid of [null, undefined, 'text', 42, {}, { component: 7, metrics: {} }, { component: 'SensorAcquisition' }, { component: 'StreamBuffer', metrics: 'x' }]) {
      reporter.onHeartbeat(invalid, T);
    }
    assert.equal(reporter.metrics.invalidHeartbeats, 8);
    assert.equal(reporter.metrics.heartbeatsReceived, 0);
    const message = reporter.evaluate(T);
    assert.deepEqual(
      Object.values(message.components).map((c) => c.lastSeenSec),
      [null, null, null],
    );
    reporter.onHeartbeat(heartbeat('SensorAcquisition'), T);
    assert.equal(reporter.metrics.heartbeatsReceived, 1);
  });

  test('a heartbeat whose metrics is null is counted invalid', () => {
    const { reporter } = reporterWith();
    reporter.onHeartbeat({ component: 'SensorAcquisition', time: new Date(T).toISOString(), uptimeSec: 1, metrics: null }, T);
    assert.equal(reporter.metrics.invalidHeartbeats, 1);
    assert.equal(reporter.metrics.heartbeatsReceived, 0);
  });

  test('a StreamBuffer heartbeat whose store.streams is not a list of objects is counted invalid and evaluation keeps working', () => {
    const { reporter } = reporterWith();
    assert.doesNotThrow(() => reporter.onHeartbeat(heartbeat('StreamBuffer', { store: { streams: {} } }), T));
    assert.doesNotThrow(() => reporter.evaluate(T));
    assert.doesNotThrow(() => reporter.onHeartbeat(heartbeat('StreamBuffer', { store: { streams: [null] } }), T));
    assert.doesNotThrow(() => reporter.evaluate(T));
  });
});

describe('HealthReporter: backlog age', () => {
  function allBeating(reporter: HealthReporter, bufferStreams: Array<number | null>, at: number): void {
    reporter.onHeartbeat(heartbeat('SensorAcquisition'), at);
    reporter.onHeartbeat(heartbeat('MqttPublisher'), at);
    reporter.onHeartbeat(heartbeat('StreamBuffer', bufferMetrics(bufferStreams)), at);
  }

  test('degraded when the StreamBuffer reports an oldestBacklogTime older than backlogAgeDegradedSec', () => {
    const { reporter } = reporterWith();
    allBeating(reporter, [T - 10_000, T - 301_000, null], T);
    const message = reporter.evaluate(T);
    assert.equal(message.status, 'degraded');
    assert.deepEqual(message.reasons, ['oldest unacknowledged record is 301 s old (limit 300 s)']);
  });

  test('healthy while the oldest backlog record is younger than backlogAgeDegradedSec', () => {
    const { reporter } = reporterWith();
    allBeating(reporter, [T - 299_000, T - 5_000], T);
    assert.equal(reporter.evaluate(T).status, 'healthy');
  });

  test('an empty backlog (oldestBacklogTime null or no streams) is healthy', () => {
    const { reporter } = reporterWith();
    allBeating(reporter, [null, null], T);
    assert.equal(reporter.evaluate(T).status, 'healthy');
    allBeating(reporter, [], T);
    assert.equal(reporter.evaluate(T).status, 'healthy');
  });

  test('only the StreamBuffer heartbeat is read for the backlog', () => {
    const { reporter } = reporterWith();
    allBeating(reporter, [], T);
    reporter.onHeartbeat(heartbeat('MqttPublisher', bufferMetrics([T - 10_000_000])), T);
    assert.equal(reporter.evaluate(T).status, 'healthy');
  });
});

describe('HealthReporter: disk space', () => {
  test('unhealthy when free disk space under storeDir is below diskFreeMinBytes', () => {
    const { reporter } = reporterWith({ diskFreeMinBytes: Number.MAX_SAFE_INTEGER }, tmpdir());
    for (const name of COMPONENTS) reporter.onHeartbeat(heartbeat(name), T);
    const message = reporter.evaluate(T);
    assert.equal(message.status, 'unhealthy');
    assert.equal(message.reasons.length, 1);
    assert.match(message.reasons[0], new RegExp(`^disk free \\d+ bytes is under ${Number.MAX_SAFE_INTEGER}$`));
    assert.ok(typeof message.system.diskFreeBytes === 'number' && message.system.diskFreeBytes > 0);
  });

  test('healthy with enough free space, and the free space is reported', () => {
    const { reporter } = reporterWith({ diskFreeMinBytes: 1 }, tmpdir());
    for (const name of COMPONENTS) reporter.onHeartbeat(heartbeat(name), T);
    const message = reporter.evaluate(T);
    assert.equal(message.status, 'healthy');
    assert.ok(typeof message.system.diskFreeBytes === 'number' && message.system.diskFreeBytes >= 1);
  });

  test('unhealthy outranks degraded, and every reason is listed', () => {
    const { reporter } = reporterWith({ diskFreeMinBytes: Number.MAX_SAFE_INTEGER }, tmpdir());
    const message = reporter.evaluate(T);
    assert.equal(message.status, 'unhealthy');
    assert.equal(message.reasons.length, 4);
    assert.match(message.reasons[3], /^disk free /);
  });

  test('a degradation found after unhealthy does not lower the status', () => {
    const { reporter } = reporterWith({ diskFreeMinBytes: Number.MAX_SAFE_INTEGER }, tmpdir());
    reporter.onHeartbeat(heartbeat('SensorAcquisition'), T);
    reporter.onHeartbeat(heartbeat('MqttPublisher'), T);
    reporter.onHeartbeat(heartbeat('StreamBuffer', bufferMetrics([T - 1_000_000])), T);
    const message = reporter.evaluate(T);
    assert.equal(message.status, 'unhealthy');
    assert.equal(message.reasons.length, 2);
  });

  test('without a store folder, or with one that does not exist, disk space is unknown (null) and not judged', () => {
    for (const dir of [undefined, join(tmpdir(), 'no-such-folder-for-health-test', 'x')]) {
      const { reporter } = reporterWith({ diskFreeMinBytes: Number.MAX_SAFE_INTEGER }, dir);
      for (const name of COMPONENTS) reporter.onHeartbeat(heartbeat(name), T);
      const message = reporter.evaluate(T);
      assert.equal(message.system.diskFreeBytes, null, String(dir));
      assert.equal(message.status, 'healthy', String(dir));
    }
  });
});

describe('HealthReporter: publishing', () => {
  test('publishNow publishes the evaluated message and counts it', async () => {
    const { reporter, published } = reporterWith();
    await reporter.publishNow();
    assert.equal(published.length, 1);
    assert.equal(published[0].status, 'degraded');
    assert.equal(reporter.metrics.published, 1);
  });

  test('a status change caused by a heartbeat triggers an immediate publish; heartbeats that change nothing do not', async () => {
    const { reporter, published } = reporterWith();
    await reporter.publishNow();
    assert.equal(published.length, 1);
    reporter.onHeartbeat(heartbeat('SensorAcquisition'));
    reporter.onHeartbeat(heartbeat('StreamBuffer'));
    assert.equal(published.length, 1, 'still degraded: no extra publish');
    reporter.onHeartbeat(heartbeat('MqttPublisher'));
    assert.equal(published.length, 2, 'degraded -> healthy publishes at once');
    assert.equal(published[1].status, 'healthy');
    reporter.onHeartbeat(heartbeat('MqttPublisher'));
    assert.equal(published.length, 2, 'still healthy: no extra publish');
    reporter.onHeartbeat(heartbeat('StreamBuffer', bufferMetrics([Date.now() - 1_000_000])));
    assert.equal(published.length, 3, 'healthy -> degraded publishes at once');
    assert.equal(published[2].status, 'degraded');
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(reporter.metrics.published, 3);
  });

  test('start() publishes at once, then at the device offset and every publishIntervalMs after it; stop() ends it', async () => {
    const { reporter, published } = reporterWith({ publishIntervalMs: 40 });
    const offset = scheduleOffsetMs('elevator-0001', 40);
    const started = Date.now();
    reporter.start();
    assert.equal(published.length, 1, 'the first message goes out at once');
    while (published.length < 3 && Date.now() - started < 5000) await new Promise((resolve) => setTimeout(resolve, 5));
    await reporter.stop();
    const elapsed = Date.now() - started;
    const count = published.length;
    assert.ok(count >= 3, `published ${count} times in ${elapsed} ms at a 40 ms interval`);
    assert.ok(elapsed >= offset + 35, `third message after ${elapsed} ms: faster than offset ${offset} ms + the interval`);
    assert.ok(count <= Math.floor((elapsed - offset) / 40) + 2, `published ${count} times in ${elapsed} ms at a 40 ms interval`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(published.length, count);
  });

  test('a failed publish is counted, not thrown, and the next publish still goes out', async () => {
    let fail = true;
    const sent: HealthMessage[] = [];
    const { reporter } = reporterWith({}, undefined, async (message) => {
      if (fail) throw new Error('ServiceError: spool full');
      sent.push(message);
    });
    await reporter.publishNow();
    assert.deepEqual(reporter.metrics, { published: 0, publishFailures: 1, heartbeatsReceived: 0, invalidHeartbeats: 0 });
    fail = false;
    await reporter.publishNow();
    assert.equal(reporter.metrics.published, 1);
    assert.equal(sent.length, 1);
  });
});

describe('HealthReporter: reporting phase', () => {
  test('health goes out at start, then at the device\'s own offset into each interval, so two devices do not report together', async () => {
    const interval = 600;
    const devices = ['elevator-0001', 'elevator-0002', 'elevator-0003', 'elevator-0004'];
    const offsets = devices.map((d) => scheduleOffsetMs(d, interval));
    assert.ok(new Set(offsets).size > 1, `the hash spreads these devices: ${offsets.join(', ')}`);
    const started = Date.now();
    const times: number[][] = devices.map(() => []);
    const reporters = devices.map(
      (device, i) =>
        new HealthReporter(device, { ...CONFIG, publishIntervalMs: interval }, undefined, async () => {
          times[i].push(Date.now() - started);
        }, captureLogger().logger),
    );
    for (const reporter of reporters) reporter.start();
    await new Promise((resolve) => setTimeout(resolve, Math.max(...offsets) + 150));
    for (const reporter of reporters) await reporter.stop();
    devices.forEach((device, i) => {
      assert.ok(times[i][0] < 100, `${device}: the first message at start`);
      assert.ok(times[i].length >= 2, `${device}: a periodic message by ${offsets[i]} ms`);
      assert.ok(times[i][1] >= offsets[i] - 5, `${device}: the periodic one at its offset ${offsets[i]} ms, not before (${times[i][1]} ms)`);
    });
  });
});

describe('HealthReporter: contract', () => {
  test('every health message it publishes passes health.v1, whatever the status', async () => {
    const validate = compileValidator(healthSchema);
    const { reporter, published } = reporterWith({ diskFreeMinBytes: 0 });
    await reporter.publishNow();
    for (const component of COMPONENTS) reporter.onHeartbeat(heartbeat(component, component === 'StreamBuffer' ? bufferMetrics([Date.now() - 60_000, null]) : { ok: true }));
    await reporter.publishNow();
    const statuses = published.map((m) => m.status);
    assert.equal(statuses[0], 'degraded', 'every component missing');
    assert.equal(statuses[statuses.length - 1], 'healthy', 'all of them reporting');
    for (const message of published) {
      const checked = validate(JSON.parse(JSON.stringify(message)));
      assert.ok(checked.ok, checked.ok ? '' : checked.reason);
    }
  });
});

describe('HealthReporter: each rule flips the state both ways on one reporter', () => {
  const allUp = (reporter: HealthReporter, now: number, buffer: Record<string, unknown> = bufferMetrics([null]), clock: Record<string, unknown> = { clockState: 'synced', lastStepMs: 0 }) => {
    reporter.onHeartbeat(heartbeat('SensorAcquisition', { ok: true, ...clock }), now);
    reporter.onHeartbeat(heartbeat('StreamBuffer', buffer), now);
    reporter.onHeartbeat(heartbeat('MqttPublisher'), now);
  };

  test('heartbeat missing for missedHeartbeats intervals: healthy, degraded, healthy again', () => {
    const { reporter } = reporterWith();
    allUp(reporter, T);
    assert.equal(reporter.evaluate(T + 1000).status, 'healthy');
    const stale = reporter.evaluate(T + 3001);
    assert.equal(stale.status, 'degraded');
    assert.equal(stale.reasons.length, 3, 'each silent component named');
    allUp(reporter, T + 3500);
    assert.equal(reporter.evaluate(T + 4000).status, 'healthy');
  });

  test('backlog older than backlogAgeDegradedSec: healthy, degraded, healthy once it drained', () => {
    const { reporter } = reporterWith({ backlogAgeDegradedSec: 300 });
    allUp(reporter, T, bufferMetrics([T - 10_000]));
    assert.equal(reporter.evaluate(T).status, 'healthy');
    allUp(reporter, T + 1000, bufferMetrics([T - 301_000]));
    const late = reporter.evaluate(T + 1000);
    assert.equal(late.status, 'degraded');
    assert.match(late.reasons.join(), /oldest unacknowledged record is 302 s old \(limit 300 s\)/);
    allUp(reporter, T + 2000, bufferMetrics([null]));
    assert.equal(reporter.evaluate(T + 2000).status, 'healthy');
  });

  test('disk free under diskFreeMinBytes: healthy, unhealthy after the guard is raised above what is free, healthy after it is lowered', () => {
    const { reporter } = reporterWith({ diskFreeMinBytes: 0 }, tmpdir());
    allUp(reporter, T);
    assert.equal(reporter.evaluate(T).status, 'healthy');
    reporter.reconfigure({ ...CONFIG, diskFreeMinBytes: Number.MAX_SAFE_INTEGER });
    const full = reporter.evaluate(T);
    assert.equal(full.status, 'unhealthy');
    assert.match(full.reasons.join(), /disk free \d+ bytes is under/);
    reporter.reconfigure({ ...CONFIG, diskFreeMinBytes: 1 });
    assert.equal(reporter.evaluate(T).status, 'healthy');
  });

  test('wall clock unsynchronized: healthy, degraded while SensorAcquisition reports unsynced, healthy when it is synced again', () => {
    const { reporter } = reporterWith();
    allUp(reporter, T);
    assert.equal(reporter.evaluate(T).status, 'healthy');
    allUp(reporter, T + 1000, bufferMetrics([null]), { clockState: 'unsynced', lastStepMs: 3_600_000 });
    const stepped = reporter.evaluate(T + 1000);
    assert.equal(stepped.status, 'degraded');
    assert.match(stepped.reasons.join(), /wall clock not synchronized: it stepped by 3600000 ms/);
    assert.equal(stepped.system.clockState, 'unsynced');
    assert.equal(stepped.system.clockLastStepMs, 3_600_000);
    allUp(reporter, T + 2000, bufferMetrics([null]), { clockState: 'synced', lastStepMs: 3_600_000 });
    assert.equal(reporter.evaluate(T + 2000).status, 'healthy');
    reporter.reconfigure({ ...CONFIG, clockUnsyncedDegrades: false });
    allUp(reporter, T + 3000, bufferMetrics([null]), { clockState: 'unsynced', lastStepMs: 10 });
    assert.equal(reporter.evaluate(T + 3000).status, 'healthy', 'the rule can be switched off in configuration');
  });
});
