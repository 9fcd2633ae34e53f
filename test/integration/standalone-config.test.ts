// Configuration without Greengrass: <dir>/<Component>.json checked with the component's schema at
// start (a bad file ends the process naming the file and the field), SIGHUP reloads it live, and
// a publisher configured for IPC refuses to start where there is no nucleus. Real bundles, real
// processes, a real mosquitto as the device's local broker.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { STANDALONE_ENV } from '../../components/shared/platform';
import { findMosquitto, MOSQUITTO_MISSING, startMosquitto } from '../helpers/mosquitto';
import { PROJECT_ROOT, tempRoot } from '../helpers/runtime-fixture';

const mosquitto = findMosquitto();
if (!mosquitto) console.error(`\n*** ${MOSQUITTO_MISSING} ***\n`);
const skip = mosquitto ? false : MOSQUITTO_MISSING;

interface Started {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

function startBundle(component: string, configDir: string, storePath: string): Started {
  const child = spawn(process.execPath, [join(PROJECT_ROOT, 'build', 'artifacts', `com.elevator.${component}`, 'main.js')], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LOG_LEVEL: 'info', AWS_IOT_THING_NAME: 'standalone-config-01', STORE_PATH: storePath, [STANDALONE_ENV]: configDir },
  });
  let output = '';
  child.stdout?.on('data', (chunk) => (output += chunk));
  child.stderr?.on('data', (chunk) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

/** Waits for one log line (a JSON object) that contains every given fragment. */
async function waitForLine(started: Started, fragments: string[], timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const found = () => started.output().split('\n').some((line) => fragments.every((f) => line.includes(f)));
  while (!found()) {
    if (started.child.exitCode !== null) throw new Error(`exited (${started.child.exitCode}) before logging ${JSON.stringify(fragments)}: ${started.output()}`);
    if (Date.now() > deadline) throw new Error(`no line with ${JSON.stringify(fragments)} within ${timeoutMs} ms: ${started.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function deviceDir(localBrokerUrl = 'mqtt://127.0.0.1:1'): string {
  const dir = tempRoot('sa-cfg-');
  writeFileSync(join(dir, 'platform.json'), JSON.stringify({ localBroker: { url: localBrokerUrl } }));
  return dir;
}

test('an invalid configuration file ends the process with exit 1, naming the file and the field', { skip, timeout: 60_000 }, async () => {
  const dir = deviceDir();
  writeFileSync(join(dir, 'SensorAcquisition.json'), JSON.stringify({ sampleIntervalMs: -5 }));
  const started = startBundle('SensorAcquisition', dir, join(dir, 'store.sqlite'));
  assert.equal(await started.exited, 1);
  assert.match(started.output(), new RegExp(`invalid configuration in ${join(dir, 'SensorAcquisition.json').replace(/[/.]/g, '\\$&')}: /sampleIntervalMs must be >=`));
});

test('a configuration file that is not JSON, or a platform.json with a plain-text bus to another host, is refused by name', { skip, timeout: 60_000 }, async () => {
  const dir = deviceDir();
  writeFileSync(join(dir, 'StreamBuffer.json'), '{"maxStoreBytes": ');
  const broken = startBundle('StreamBuffer', dir, join(dir, 'store.sqlite'));
  assert.equal(await broken.exited, 1);
  assert.match(broken.output(), /StreamBuffer\.json: not valid JSON/);

  const remote = deviceDir('mqtt://192.0.2.10:1883');
  const refused = startBundle('StreamBuffer', remote, join(remote, 'store.sqlite'));
  assert.equal(await refused.exited, 1);
  assert.match(refused.output(), /localBroker\.url \\"mqtt:\/\/192\.0\.2\.10:1883\\" is plain MQTT to another host/);
});

test('MqttPublisher configured for IPC refuses to start without a nucleus, and says what to set instead', { skip, timeout: 60_000 }, async () => {
  const dir = deviceDir();
  // No store yet: the refusal must not wait for StreamBuffer.
  writeFileSync(join(dir, 'MqttPublisher.json'), JSON.stringify({ transport: { type: 'ipc' } }));
  const started = startBundle('MqttPublisher', dir, join(dir, 'store.sqlite'));
  assert.equal(await started.exited, 1);
  assert.match(started.output(), /transport\.type \\"ipc\\" publishes through the Greengrass nucleus, and there is none/);
  assert.match(started.output(), /set transport\.type \\"mqtt5\\" with brokerUrl and the certificate paths in .*MqttPublisher\.json/);
});

test('SIGHUP reloads the configuration file live; an invalid one is refused and the component keeps running', { skip, timeout: 90_000 }, async () => {
  const broker = await startMosquitto(mosquitto!);
  const dir = deviceDir(broker.url);
  writeFileSync(join(dir, 'HealthReporter.json'), JSON.stringify({ publishIntervalMs: 30000 }));
  const started = startBundle('HealthReporter', dir, join(dir, 'store.sqlite'));
  try {
    await waitForLine(started, ['"message":"running"', '"platform":"standalone"']);
    writeFileSync(join(dir, 'HealthReporter.json'), JSON.stringify({ publishIntervalMs: 2000, missedHeartbeats: 5 }));
    started.child.kill('SIGHUP');
    await waitForLine(started, ['"message":"configuration reloaded"', '"missedHeartbeats":5', '"publishIntervalMs":2000']);

    writeFileSync(join(dir, 'HealthReporter.json'), JSON.stringify({ publishIntervalMs: 5 }));
    started.child.kill('SIGHUP');
    await waitForLine(started, ['"message":"configuration file is invalid; keeping the running configuration"', '/publishIntervalMs must be >= 1000']);
    assert.equal(started.child.exitCode, null, 'still running');

    started.child.kill('SIGTERM');
    assert.equal(await started.exited, 0);
    assert.match(started.output(), /"message":"stopped cleanly"/);
  } finally {
    started.child.kill('SIGKILL');
    await broker.stop();
  }
});
