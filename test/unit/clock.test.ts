import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { ClockMonitor, STEP_THRESHOLD_MS } from '../../components/sensor-acquisition/clock';
import { captureLogger } from '../helpers/capture-logger';

// The wall clock is the input under test here, so Date.now is steered; CLOCK_MONOTONIC is real.
const realNow = Date.now;
let offset = 0;
Date.now = () => realNow() + offset;
afterEach(() => {
  offset = 0;
});

test('a steady clock is "synced" when timesyncd says so, and "unknown" when nothing says', () => {
  assert.equal(new ClockMonitor(captureLogger().logger, () => true).check(), 'synced');
  assert.equal(new ClockMonitor(captureLogger().logger, () => false).check(), 'unknown');
});

test('a step back or forward beyond the threshold is counted, logged, and marks records "unsynced"', () => {
  const { logger, entries } = captureLogger();
  const monitor = new ClockMonitor(logger, () => true);
  assert.equal(monitor.check(), 'synced');
  offset = -3_600_000;
  assert.equal(monitor.check(), 'unsynced');
  assert.equal(monitor.metrics.clockSteps, 1);
  assert.ok(Math.abs(monitor.metrics.lastStepMs + 3_600_000) < 1000, `step ${monitor.metrics.lastStepMs}`);
  assert.ok(entries.some((e) => e.level === 'warn' && /wall clock stepped/.test(e.message)));
  offset = 7_200_000;
  assert.equal(monitor.check(), 'unsynced');
  assert.equal(monitor.metrics.clockSteps, 2);
});

test('drift below the threshold is not a step', () => {
  const monitor = new ClockMonitor(captureLogger().logger, () => true);
  monitor.check();
  offset = STEP_THRESHOLD_MS / 2;
  assert.equal(monitor.check(), 'synced');
  assert.equal(monitor.metrics.clockSteps, 0);
});
