import { test } from 'node:test';
import assert from 'node:assert/strict';
import { countInto, HeartbeatFigures } from '../../components/shared/heartbeat-metrics';

const IPC = { connects: 1, disconnects: 0, callFailures: 0 };

test('rates come from two heartbeats: the first has none, the second divides each counter delta by the seconds between them', () => {
  const figures = new HeartbeatFigures();
  assert.deepEqual(figures.common({ appended: 100, recordsAcked: 40, notACounter: 'x' }, IPC, 10_000).ratesPerSec, {});
  const second = figures.common({ appended: 150, recordsAcked: 60 }, IPC, 15_000);
  assert.deepEqual(second.ratesPerSec, { appended: 10, recordsAcked: 4 });
});

test('a counter that went down (its owner restarted) gets no rate rather than a negative one', () => {
  const figures = new HeartbeatFigures();
  figures.common({ recordsSent: 500 }, IPC, 0);
  assert.deepEqual(figures.common({ recordsSent: 20 }, IPC, 5000).ratesPerSec, {});
  assert.deepEqual(figures.common({ recordsSent: 70 }, IPC, 10_000).ratesPerSec, { recordsSent: 10 });
});

test('reconnects are connections after the first; the last publish age is given when the component publishes', () => {
  const figures = new HeartbeatFigures();
  const common = figures.common({ lastPublishAt: new Date(60_000).toISOString() }, { connects: 4, disconnects: 3, callFailures: 7 }, 72_500);
  assert.equal(common.ipcReconnects, 3);
  assert.equal(common.ipcCallFailures, 7);
  assert.equal(common.sinceLastPublishSec, 12.5);
  assert.equal(figures.common({ lastPublishAt: null }, IPC, 80_000).sinceLastPublishSec, null, 'never published');
  assert.equal('sinceLastPublishSec' in figures.common({ appended: 1 }, IPC, 90_000), false, 'not a publishing component');
});

test('countInto: keys an object already has, "__proto__" included, count like any other and leave the prototype alone', () => {
  const counts: Record<string, number> = {};
  for (const key of ['toString', 'constructor', '__proto__', 'valueOf', 'motor', '__proto__']) countInto(counts, key);
  countInto(counts, 'motor', 4);
  assert.deepEqual(Object.entries(counts).sort(), [['__proto__', 2], ['constructor', 1], ['motor', 5], ['toString', 1], ['valueOf', 1]]);
  assert.equal(Object.getPrototypeOf(counts), Object.prototype);
  assert.equal(JSON.parse(JSON.stringify(counts)).toString, 1, 'survives a JSON round trip as a number');
});
