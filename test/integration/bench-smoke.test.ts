import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { findMosquitto, MOSQUITTO_MISSING } from '../helpers/mosquitto';
import { tempRoot } from '../helpers/runtime-fixture';

// The benchmark suite at tiny sizes (scripts/bench.ts --smoke): every scenario runs end to end and
// reports well-formed figures. Benchmarks are not timed tests: nothing here compares a figure with
// a target or with another figure, so a slow or busy machine cannot fail it.

const mosquitto = findMosquitto();
if (!mosquitto) console.error(`\n*** ${MOSQUITTO_MISSING} ***\n`);

const BENCH = join(__dirname, '..', '..', 'scripts', 'bench.js');

function isFigure(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0;
}

function assertFigures(object: Record<string, unknown>, keys: string[], where: string): void {
  for (const key of keys) assert.ok(isFigure(object[key]), `${where}.${key} is a non-negative number, got ${JSON.stringify(object[key])}`);
}

test('npm run bench -- --smoke --json runs every scenario and ends with one well-formed JSON line', { skip: mosquitto ? false : MOSQUITTO_MISSING, timeout: 240_000 }, () => {
  const root = tempRoot('bench-smoke-');
  const run = spawnSync(process.execPath, [BENCH, '--smoke', '--json', '--root', root], { encoding: 'utf8', timeout: 230_000, env: { ...process.env, LOG_LEVEL: 'error' } });
  assert.equal(run.status, 0, `bench exited ${run.status} ${run.signal ?? ''}; logs under ${root}\n${run.stderr.slice(-4000)}`);
  rmSync(root, { recursive: true, force: true });
  const lines = run.stdout.trim().split('\n');
  const report = JSON.parse(lines[lines.length - 1]) as Record<string, Record<string, unknown>>;

  const machine = report.machine;
  assert.ok(Number.isInteger(machine.cores) && (machine.cores as number) > 0, 'machine.cores');
  assertFigures(machine, ['memoryGiB'], 'machine');
  assert.match(String(machine.node), /^v\d+\./, 'machine.node is the Node version');

  assertFigures(report.append, ['recordsPerSec'], 'append');
  assertFigures(report.sustained, ['recordsPerSec', 'vsBaseline'], 'sustained');
  assertFigures(report.drain, ['recordsPerSec', 'bytesPerSec', 'quotaUtilization', 'vsBaseline'], 'drain');
  assertFigures(report.latency, ['p50Ms', 'p99Ms', 'maxMs'], 'latency');
  assert.ok((report.latency.p50Ms as number) <= (report.latency.p99Ms as number) && (report.latency.p99Ms as number) <= (report.latency.maxMs as number), 'p50 <= p99 <= max');
  const rss = report.footprint.rssMiB as Record<string, unknown>;
  assert.deepEqual(Object.keys(rss).sort(), ['HealthReporter', 'MqttPublisher', 'SensorAcquisition', 'StreamBuffer']);
  assertFigures(rss, Object.keys(rss), 'footprint.rssMiB');
  assertFigures(report.footprint, ['cpuSecPer10k'], 'footprint');
  // The same-run "before" of the shipped Node options: Node's own defaults.
  const before = report.footprint.before as Record<string, unknown>;
  assert.equal(before.nodeOptions, '');
  assert.notEqual(report.footprint.nodeOptions, '', 'the shipped nodeOptions are named');
  assert.deepEqual(Object.keys(before.rssMiB as object).sort(), ['HealthReporter', 'MqttPublisher', 'SensorAcquisition', 'StreamBuffer']);
  assertFigures(before.rssMiB as Record<string, unknown>, Object.keys(before.rssMiB as object), 'footprint.before.rssMiB');
  assertFigures(before, ['cpuSecPer10k'], 'footprint.before');
  assertFigures(report.recovery, ['seconds'], 'recovery');
  assertFigures(report.baseline, ['sustainedRecordsPerSec', 'drainRecordsPerSec', 'recoverySeconds', 'lostOnKill', 'lostOnKillOurs'], 'baseline');
  // A guarantee, not a speed: a power cut during an outage loses nothing of this project's backlog.
  assert.equal(report.baseline.lostOnKillOurs, 0, 'lostOnKillOurs');

  const targets = report.targets as unknown as Array<{ name: string; target: string; met: boolean }>;
  assert.ok(Array.isArray(targets) && targets.length >= 8, 'every target is printed');
  for (const t of targets) assert.equal(typeof t.met, 'boolean', `target ${t.name} says whether it was met`);
});
