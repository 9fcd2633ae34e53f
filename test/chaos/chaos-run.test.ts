import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '../../components/shared/logger';
import { findMosquitto, MOSQUITTO_MISSING } from '../helpers/mosquitto';
import { ChaosHarness } from './harness';

const mosquitto = findMosquitto();
if (!mosquitto) console.error(`\n*** ${MOSQUITTO_MISSING} ***\n`);

test('a minute of chaos: every fault fires, nothing is lost or stored twice, and the epoch loss is exactly what the corruption put at risk', { skip: mosquitto ? false : MOSQUITTO_MISSING, timeout: 420_000 }, async () => {
  const seed = Number(process.env.CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31));
  const report = await new ChaosHarness({ durationMs: 60_000, drainTimeoutMs: 180_000, thingName: 'ci-chaos-01', seed, logger: createLogger('chaos-test') }).run();
  const context = `seed ${seed} (rerun with CHAOS_SEED=${seed}): ${JSON.stringify({ ...report, timeline: undefined })}`;
  // Faults this machine cannot inject are said out loud, never counted as passed.
  const unavailable = [...(report.environment.root ? [] : ['disk-full']), ...(report.environment.faketime ? [] : ['clock-jump'])];
  if (unavailable.length > 0) console.error(`\n*** NOT INJECTED on this machine: ${unavailable.join(', ')} (disk-full needs root for a tmpfs; clock-jump needs libfaketime) ***\n`);
  assert.deepEqual(report.notFired.filter((f) => !unavailable.includes(f)), [], context);
  assert.ok(report.sampled > 500, context);
  assert.equal(report.drained, true, context);
  assert.equal(report.lost, 0, context);
  assert.equal(report.duplicatesInArchive, 0, context);
  assert.equal(report.epochLoss, report.epochLossExpected, context);
  assert.ok(report.epochLoss <= report.epochAtRisk, context);
  assert.equal(report.guarantees.accountingComplete, true, context);
  assert.equal(new Set(report.streams.map((s) => s.epoch)).size, 2, `the corruption started a second epoch, and both are accounted for: ${context}`);
});
