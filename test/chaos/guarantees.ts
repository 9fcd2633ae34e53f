import assert from 'node:assert/strict';
import type { ChaosHarness } from './harness';

type ChaosReport = Awaited<ReturnType<ChaosHarness['run']>>;

/**
 * What every chaos run must show, whatever the transport: every fault that applies fired (faults
 * this machine cannot inject are said out loud, never counted as passed), nothing lost, nothing
 * stored twice, and the epoch loss exactly what the corruption put at risk.
 */
export function assertChaosGuarantees(report: ChaosReport, context: string): void {
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
}
