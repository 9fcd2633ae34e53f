import { test } from 'node:test';
import { createLogger } from '../../components/shared/logger';
import { findMosquitto, MOSQUITTO_MISSING } from '../helpers/mosquitto';
import { assertChaosGuarantees } from './guarantees';
import { ChaosHarness } from './harness';

const mosquitto = findMosquitto();
if (!mosquitto) console.error(`\n*** ${MOSQUITTO_MISSING} ***\n`);

test('a minute of chaos: every fault fires, nothing is lost or stored twice, and the epoch loss is exactly what the corruption put at risk', { skip: mosquitto ? false : MOSQUITTO_MISSING, timeout: 420_000 }, async () => {
  const seed = Number(process.env.CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31));
  const report = await new ChaosHarness({ durationMs: 60_000, drainTimeoutMs: 180_000, thingName: 'ci-chaos-01', seed, logger: createLogger('chaos-test') }).run();
  const context = `seed ${seed} (rerun with CHAOS_SEED=${seed}): ${JSON.stringify({ ...report, timeline: undefined })}`;
  assertChaosGuarantees(report, context);
});
