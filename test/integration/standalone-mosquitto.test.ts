// The four components without Greengrass: the bundles as plain processes (no nucleus, no local
// runtime), configured from files, heartbeats over the device's local broker, IoT Core traffic over
// the SDK's MQTT 5 client with mutual TLS, against a real mosquitto; and the publisher's last will.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { DeviceStatusBook, deviceStatusKey } from '../../cloud/device-status';
import { LocalFolderArchive } from '../../cloud/archive';
import { createLogger } from '../../components/shared/logger';
import type { StatusV1 } from '../../components/shared/contracts.generated';
import healthShadowSchema from '../../components/shared/schemas/health-shadow.v1.schema.json';
import statusSchema from '../../components/shared/schemas/status.v1.schema.json';
import { shadowTopic, statusTopic } from '../../components/shared/topics';
import { compileValidator } from '../../components/shared/validation';
import { MQTT_PUBLISHER, Pipeline, type PipelineSummary } from '../../scripts/pipeline';
import { findMosquitto, MOSQUITTO_MISSING } from '../helpers/mosquitto';
import { startTwoListenerMosquitto, type TwoListenerMosquitto } from '../helpers/mosquitto-tls';
import { tempRoot } from '../helpers/runtime-fixture';

const mosquitto = findMosquitto();
if (!mosquitto) console.error(`\n*** ${MOSQUITTO_MISSING} ***\n`);
const skip = mosquitto ? false : MOSQUITTO_MISSING;

const logger = createLogger('standalone-test');
logger.level = process.env.LOG_LEVEL ?? 'warn';
const validStatus = compileValidator<StatusV1>(statusSchema);
const validShadow = compileValidator(healthShadowSchema);

interface Seen {
  topic: string;
  payload: Buffer;
  at: number;
  retain: boolean;
}

/** A client of "IoT Core" (the TLS listener), with its own certificate, that records what arrives. */
async function observe(broker: TwoListenerMosquitto, filters: string[]): Promise<{ client: MqttClient; seen: Seen[] }> {
  const seen: Seen[] = [];
  const client = await mqtt.connectAsync(broker.tlsUrl, {
    protocolVersion: 5,
    clientId: `observer-${process.pid}-${Math.random().toString(16).slice(2)}`,
    cert: readFileSync(broker.pki.clientCertPath),
    key: readFileSync(broker.pki.clientKeyPath),
    ca: readFileSync(broker.pki.caPath),
    rejectUnauthorized: true,
    reconnectPeriod: 0,
  });
  client.on('message', (topic, payload, packet) => seen.push({ topic, payload, at: Date.now(), retain: packet.retain }));
  await client.subscribeAsync(filters, { qos: 1 });
  return { client, seen };
}

async function waitFor<T>(what: string, probe: () => T | undefined, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function statuses(seen: Seen[], thing: string): Array<StatusV1 & { at: number }> {
  return seen
    .filter((m) => m.topic === statusTopic(thing))
    .map((m) => {
      const checked = validStatus(JSON.parse(m.payload.toString('utf8')));
      assert.ok(checked.ok, `status message passes status.v1: ${checked.ok ? '' : checked.reason}`);
      return { ...checked.value, at: m.at };
    });
}

function assertNothingLost(summary: PipelineSummary): void {
  assert.equal(summary.drained, true, 'the backlog drained');
  assert.equal(summary.missing, 0, 'nothing missing');
  assert.equal(summary.archived, summary.produced, `archived ${summary.archived} of ${summary.produced}`);
  assert.equal(summary.invalidAtCloud, 0);
}

/** The ingest handles every message the device sends, the status topic included: nothing is rejected. */
function assertNothingRejected(archiveRoot: string): void {
  const dir = join(archiveRoot, 'rejected');
  const rejected = existsSync(dir) ? readdirSync(dir).flatMap((day) => readdirSync(join(dir, day)).map((file) => readFileSync(join(dir, day, file), 'utf8'))) : [];
  assert.deepEqual(rejected, [], 'no message rejected');
}

test('without Greengrass: the four bundles as plain processes, mutual TLS to the broker, every record archived, health and its shadow sent', { skip, timeout: 240_000 }, async () => {
  const broker = await startTwoListenerMosquitto(mosquitto!);
  const thing = 'standalone-tls-01';
  const observer = await observe(broker, [statusTopic(thing), shadowTopic(thing, 'health', 'update')]);
  const root = tempRoot('sa-tls-');
  try {
    const pipeline = new Pipeline({
      root,
      thingName: thing,
      platform: 'standalone',
      brokerUrl: broker.tlsUrl,
      localBrokerUrl: broker.plainUrl,
      brokerTls: { certPath: broker.pki.clientCertPath, keyPath: broker.pki.clientKeyPath, caPath: broker.pki.caPath },
      durationMs: 10_000,
      drainTimeoutMs: 90_000,
      // The test runner quiets every process to warn; the logs below are read for what each component said at info.
      runtimeEnv: { LOG_LEVEL: 'info' },
      resume: false,
      timeScale: 20,
      logger,
    });
    const summary = await pipeline.run();
    assert.ok(summary.produced > 50, `records were produced (${summary.produced})`);
    assertNothingLost(summary);
    assert.ok((summary.streams.find((s) => s.stream === 'run')?.produced ?? 0) > 0, 'runs were derived from the simulated signals');
    assert.deepEqual(Object.values(summary.componentRestarts), [0, 0, 0, 0], `no component crashed: ${JSON.stringify(summary.componentRestarts)}`);

    // No runtime ran: no Greengrass root, and each component says which platform it ran on.
    assert.equal(existsSync(join(root, 'greengrass')), false, 'the local runtime never started');
    assert.equal(pipeline.runtimeStatus(), undefined);
    for (const component of ['SensorAcquisition', 'StreamBuffer', 'MqttPublisher', 'HealthReporter']) {
      assert.ok(existsSync(join(root, 'device', 'etc', `${component}.json`)), `${component}.json written`);
      const log = readFileSync(join(root, 'device', 'logs', `com.elevator.${component}.log`), 'utf8');
      assert.match(log, /"message":"running without Greengrass"/, `${component} ran standalone`);
      assert.match(log, /"platform":"standalone"/, `${component} reached RUNNING`);
      assert.doesNotMatch(log, /IPC/, `${component} never touched IPC`);
    }

    // Health went over mutual TLS, and it saw every component's heartbeat over the local bus.
    const health = summary.health[thing];
    assert.ok(health, 'the device\'s health reached the cloud');
    assert.deepEqual(
      health.reasons.filter((r) => /no heartbeat/.test(r)),
      [],
      `heartbeats arrived over the local broker: ${health.reasons.join('; ')}`,
    );
    const shadows = observer.seen.filter((m) => m.topic === shadowTopic(thing, 'health', 'update'));
    assert.ok(shadows.length > 0, 'the health shadow was updated over $aws/things/<thing>/shadow/name/health/update');
    const request = JSON.parse(shadows.at(-1)!.payload.toString('utf8')) as { state: { reported: unknown }; clientToken: string };
    const shadowChecked = validShadow(request.state.reported);
    assert.ok(shadowChecked.ok, shadowChecked.ok ? '' : shadowChecked.reason);
    assert.match(request.clientToken, /^[0-9a-f-]{36}$/);

    // The publisher announced itself online, then offline (stopped) at the clean shutdown.
    // (A reconnect on a loaded machine would add another online; none may say anything else.)
    const seenStatuses = statuses(observer.seen, thing).map((s) => `${s.status}/${s.reason}`);
    assert.equal(seenStatuses[0], 'online/connected', seenStatuses.join(', '));
    assert.equal(seenStatuses.at(-1), 'offline/stopped', seenStatuses.join(', '));
    assert.deepEqual(seenStatuses.slice(1, -1).filter((s) => s !== 'online/connected'), [], seenStatuses.join(', '));
    assertNothingRejected(join(root, 'cloud-archive'));
    const stored = JSON.parse(readFileSync(join(root, 'cloud-archive', deviceStatusKey(thing)), 'utf8')) as { status: string; reason: string };
    assert.deepEqual([stored.status, stored.reason], ['offline', 'stopped'], 'the ingest keeps the latest device status');
  } finally {
    await observer.client.endAsync(true);
    await broker.stop();
  }
});

test('a SIGKILLed publisher: its last will says offline after the will delay and not before, the restart says online, nothing is lost', { skip, timeout: 240_000 }, async () => {
  const broker = await startTwoListenerMosquitto(mosquitto!);
  const thing = 'standalone-will-01';
  const willDelaySec = 3;
  const observer = await observe(broker, [statusTopic(thing)]);
  const root = tempRoot('sa-will-');
  const book = new DeviceStatusBook({ archive: new LocalFolderArchive(join(root, 'status-book')), logger });
  try {
    const pipeline = new Pipeline({
      root,
      thingName: thing,
      platform: 'standalone',
      brokerUrl: broker.tlsUrl,
      localBrokerUrl: broker.plainUrl,
      brokerTls: { certPath: broker.pki.clientCertPath, keyPath: broker.pki.clientKeyPath, caPath: broker.pki.caPath },
      willDelaySec,
      drainTimeoutMs: 90_000,
      resume: false,
      timeScale: 20,
      logger,
    });
    const running = pipeline.run();
    running.catch(() => undefined);
    const firstOnline = await waitFor('the publisher\'s online status', () => statuses(observer.seen, thing).find((s) => s.status === 'online'), 60_000);
    assert.equal(firstOnline.willDelaySec, willDelaySec);
    const accepted = await book.accept(thing, Buffer.from(JSON.stringify(firstOnline, (k, v) => (k === 'at' ? undefined : v))), new Date());
    assert.ok(accepted.ok && accepted.outcome === 'stored');
    // Let some records go out and some wait, so the kill lands with work in flight.
    await new Promise((r) => setTimeout(r, 2_000));

    const killedAt = Date.now();
    assert.ok(pipeline.killComponent(MQTT_PUBLISHER), 'the publisher process was killed');
    const will = await waitFor('the last will', () => statuses(observer.seen, thing).find((s) => s.status === 'offline'), 30_000);
    const afterMs = will.at - killedAt;
    assert.equal(will.reason, 'connection-lost');
    assert.equal(will.startedAt, firstOnline.startedAt, 'the will belongs to the connection that announced itself online');
    // mosquitto runs will delays on a 1 s tick; the delay is a floor, and the will is not late either.
    assert.ok(afterMs >= willDelaySec * 1000 - 1000, `the will waited for its delay: it came ${afterMs} ms after the kill (delay ${willDelaySec} s)`);
    // Not late either; bounded loosely, since only a loaded machine's delivery adds to it.
    assert.ok(afterMs <= willDelaySec * 1000 + 15_000, `the will came ${afterMs} ms after the kill`);

    const offline = await book.accept(thing, Buffer.from(JSON.stringify(will, (k, v) => (k === 'at' ? undefined : v))), new Date(will.at));
    assert.ok(offline.ok && offline.outcome === 'stored');
    assert.equal(offline.entry.status, 'offline');
    // offlineSince is the will's arrival less its delay: the moment the link was lost, not when the
    // will came; so it falls near the kill however late the will was delivered.
    assert.equal(Date.parse(offline.entry.offlineSince!), will.at - willDelaySec * 1000, 'offlineSince is the arrival less the will delay');
    assert.ok(Date.parse(offline.entry.offlineSince!) >= killedAt - 1000, `offlineSince ${offline.entry.offlineSince} is not before the kill (${new Date(killedAt).toISOString()})`);

    // The will is retained: a dashboard that subscribes now sees "offline" at once.
    const late = await observe(broker, [statusTopic(thing)]);
    try {
      const retained = await waitFor('the retained status', () => late.seen.find((m) => m.retain), 10_000);
      assert.equal((JSON.parse(retained.payload.toString('utf8')) as StatusV1).reason, 'connection-lost');
    } finally {
      await late.client.endAsync(true);
    }

    pipeline.startComponent(MQTT_PUBLISHER);
    const back = await waitFor('online again', () => statuses(observer.seen, thing).find((s) => s.status === 'online' && s.startedAt !== firstOnline.startedAt), 60_000);
    const restarted = await book.accept(thing, Buffer.from(JSON.stringify(back, (k, v) => (k === 'at' ? undefined : v))), new Date());
    assert.ok(restarted.ok && restarted.outcome === 'stored' && restarted.entry.status === 'online');

    pipeline.requestStop();
    const summary = await running;
    assert.ok(summary.produced > 20, `records were produced (${summary.produced})`);
    assertNothingLost(summary);
  } finally {
    await observer.client.endAsync(true);
    await broker.stop();
  }
});
