// Runs the offline Device Advisor against the project's MQTT 5 transport and requires that no
// case fails; then runs the backoff cases against a deliberately non-conforming client so the
// suite is shown to be able to fail.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { constantBackoffMqttJsProfile, mqtt5TransportProfile } from './devices';
import { reportTable, runAdvisor } from './runner';

test('the MQTT 5 transport passes every Device Advisor case (or hits a documented SDK limitation)', { timeout: 120_000 }, async () => {
  const report = await runAdvisor(mqtt5TransportProfile);
  const failed = report.cases.filter((c) => c.result === 'fail');
  assert.deepEqual(
    failed.map((c) => `${c.name}: ${c.summary}`),
    [],
    `\n${reportTable(report)}\n\nfigures of the failed cases: ${JSON.stringify(failed.map((c) => ({ name: c.name, figures: c.figures })))}`,
  );
  for (const c of report.cases.filter((r) => r.result === 'sdk-limitation')) {
    assert.match(c.summary, /MQTT 5\.0/, `${c.name}: an sdk-limitation verdict must cite the spec`);
  }
});

test('negative control: a constant-backoff client fails the backoff cases', { timeout: 90_000 }, async () => {
  const report = await runAdvisor(constantBackoffMqttJsProfile, ['exponential backoff', 'reconnect backoff on server disconnect', 'connect']);
  const verdicts = Object.fromEntries(report.cases.map((c) => [c.name, c.result]));
  // The broker speaks MQTT 3.1.1 to this client too: the control is judged, not merely rejected.
  assert.equal(verdicts.connect, 'pass', reportTable(report));
  assert.equal(verdicts['exponential backoff'], 'fail', reportTable(report));
  assert.equal(verdicts['reconnect backoff on server disconnect'], 'fail', reportTable(report));
  const factor = report.cases.find((c) => c.name === 'exponential backoff')!.figures.growthFactorPerAttempt as number;
  assert.ok(factor < 1.2, `a constant reconnect period should grow by about 1x per attempt, measured ${factor}`);
});
