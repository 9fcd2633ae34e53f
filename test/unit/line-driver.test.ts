import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { DEFAULT_DETECTOR_CONFIG, Deriver, DerivedSource } from '../../components/sensor-acquisition/derive';
import { formatLine, lineChecksum, LineProtocolDriver, MAX_LINE_LENGTH, openLineDevice } from '../../components/sensor-acquisition/line-driver';
import { ReplaySignals } from '../../components/sensor-acquisition/replay';
import type { SignalSample } from '../../components/sensor-acquisition/signals';
import { createLogger } from '../../components/shared/logger';
import { mulberry32 } from '../helpers/prng';

const FIXTURE = join(__dirname, '..', '..', '..', 'test', 'fixtures', 'replay-two-runs.ndjson');
const SAMPLES: SignalSample[] = readFileSync(FIXTURE, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as SignalSample);
const deriver = () => new Deriver({ landingHeightsM: [0, 3, 6, 9], doorWidthM: 0.9, metricsIntervalMs: 1000, rawSamples: false, detector: DEFAULT_DETECTOR_CONFIG });

/** Cuts text into chunks of 1..40 characters (seeded), so lines are split across writes. */
function chunks(text: string, seed: number): string[] {
  const random = mulberry32(seed);
  const out: string[] = [];
  for (let i = 0; i < text.length; ) {
    const size = 1 + Math.floor(random() * 40);
    out.push(text.slice(i, i + size));
    i += size;
  }
  return out;
}

describe('the line protocol', () => {
  test('a line is $S,<eight fields>*HH with the XOR of the characters between $ and *', () => {
    const line = formatLine({ t: 1000, positionM: 1.5, velocityMps: -0.25, doorOpening: 0, obstructed: true, currentA: null, temperatureC: 40, vibrationMmS: 0.2 });
    const body = 'S,1000,1.5,-0.25,0,1,,40,0.2';
    assert.equal(line, `$${body}*${lineChecksum(body)}`);
    let xor = 0;
    for (const ch of body) xor ^= ch.charCodeAt(0);
    assert.equal(lineChecksum(body), xor.toString(16).toUpperCase().padStart(2, '0'));
  });
});

describe('LineProtocolDriver', () => {
  test('a stream written in chunks that split lines yields every sample, and the same events as the replay of the same data', () => {
    const text = SAMPLES.map((s) => `${formatLine(s)}\r\n`).join('');
    const driver = new LineProtocolDriver({ origin: '/dev/ttyUSB0' });
    const fromLine = new DerivedSource(driver, deriver());
    const records = [];
    for (const [i, chunk] of chunks(text, 5).entries()) {
      driver.write(i % 2 ? Buffer.from(chunk) : chunk);
      if (i % 17 === 0) records.push(...fromLine.advance(100));
    }
    driver.end();
    records.push(...fromLine.advance(100));
    assert.equal(driver.metrics().driverSamples, SAMPLES.length);
    assert.deepEqual(fromLine.takeRejected(), []);
    const replayed = new DerivedSource(ReplaySignals.fromFile(FIXTURE), deriver()).advance(60_000);
    assert.deepEqual(records, replayed);
    assert.equal(records.filter((r) => r.stream === 'run').length, 2);
  });

  test('a bad checksum and malformed lines are rejected with reasons and line numbers; the stream goes on', () => {
    const lines = SAMPLES.map(formatLine);
    const good = lines[10];
    const badChecksum = good.replace(/\*([0-9A-F]{2})$/, (_, hh: string) => `*${hh === '00' ? '01' : '00'}`);
    const damaged = good.replace(',0,', ',7,'); // a corrupted digit: the checksum no longer matches
    const body = 'S,1700000000450,0,0,0,maybe,0.6,35,0.15';
    const notBoolean = `$${body}*${lineChecksum(body)}`;
    const short = `$S,1,2*${lineChecksum('S,1,2')}`;
    const stream = [...lines.slice(0, 3), badChecksum, 'garbage without a dollar', damaged, notBoolean, short, '$S,1,2,3', ...lines.slice(3)];
    const driver = new LineProtocolDriver({ origin: 'fifo' });
    const source = new DerivedSource(driver, deriver());
    for (const chunk of chunks(stream.join('\n') + '\n', 9)) driver.write(chunk);
    const records = source.advance(0);
    const rejected = source.takeRejected();
    assert.deepEqual(rejected.map((r) => r.line), [4, 5, 6, 7, 8, 9]);
    assert.match(rejected[0].reason, /^bad checksum 0[01], computed [0-9A-F]{2}$/);
    assert.equal(rejected[1].reason, 'does not start with "$"');
    assert.match(rejected[2].reason, /bad checksum/);
    assert.equal(rejected[3].reason, 'obstructed "maybe" is not true/false/1/0 or empty');
    assert.equal(rejected[4].reason, '2 fields, expected 8');
    assert.equal(rejected[5].reason, 'no "*HH" checksum');
    assert.equal(rejected[0].text, badChecksum);
    assert.equal(rejected[0].origin, 'fifo');
    assert.equal(driver.metrics().driverSamples, SAMPLES.length);
    assert.equal(records.filter((r) => r.stream === 'door-cycle').length, 2);
  });

  test('a sample not after the previous one is rejected; an over-long line is dropped up to its newline', () => {
    const driver = new LineProtocolDriver();
    driver.write(`${formatLine(SAMPLES[1])}\n${formatLine(SAMPLES[0])}\n`);
    driver.write('$'.padEnd(MAX_LINE_LENGTH + 10, 'x'));
    driver.write('yyyy');
    driver.write(`zz\n${formatLine(SAMPLES[2])}\n`);
    const { samples, rejected } = driver.read(0);
    assert.deepEqual(samples.map((s) => s.t), [SAMPLES[1].t, SAMPLES[2].t]);
    assert.deepEqual(rejected.map((r) => [r.line, r.reason.replace(/\d{13}/g, 'T')]), [
      [2, "t T is not after the previous sample's T"],
      [3, `line longer than ${MAX_LINE_LENGTH} characters`],
    ]);
  });

  test("clock 'host': t comes from the host clock at receipt, kept increasing", () => {
    let now = 5000;
    const driver = new LineProtocolDriver({ clock: 'host', now: () => now });
    const body = 'S,,1,0,0,0,1,30,0.1';
    driver.write(`$${body}*${lineChecksum(body)}\n$${body}*${lineChecksum(body)}\n`);
    now = 7000;
    driver.write(`${formatLine(SAMPLES[0])}\n`);
    assert.deepEqual(driver.read(0).samples.map((s) => s.t), [5000, 5001, 7000]);
  });

  test('attach() reads a Readable to its end, including a last line without a newline', async () => {
    const text = SAMPLES.slice(0, 20).map(formatLine).join('\n');
    const driver = new LineProtocolDriver();
    await driver.attach(Readable.from(chunks(text, 3).map((c) => Buffer.from(c))));
    assert.equal(driver.read(0).samples.length, 20);
  });

  test('openLineDevice reads a file path into the driver and stops at its end', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'line-driver-'));
    try {
      const path = join(dir, 'capture.txt');
      writeFileSync(path, SAMPLES.slice(0, 50).map((s) => `${formatLine(s)}\n`).join(''));
      const driver = new LineProtocolDriver({ origin: path });
      const handle = openLineDevice(path, driver, createLogger('test', {}));
      let got = 0;
      for (let i = 0; i < 100 && got < 50; i += 1) {
        await new Promise((resolve) => setTimeout(resolve, 10));
        got += driver.read(0).samples.length;
      }
      handle.close();
      assert.equal(got, 50);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
