import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LocalFolderArchive } from '../../cloud/archive';
import { recordKey } from '../../cloud/keys';
import { Ledger, MAX_GAPS, StreamLedger } from '../../cloud/ledger';
import { makeRecords, tempDir } from '../helpers/cloud-fixtures';

function ledgerOf(...ranges: Array<[number, number]>): StreamLedger {
  const ledger = new StreamLedger();
  for (const [from, to] of ranges) ledger.add(from, to);
  return ledger;
}

describe('StreamLedger', () => {
  test('an empty ledger has watermark 0, no gaps and nothing archived', () => {
    const ledger = new StreamLedger();
    assert.equal(ledger.watermark(), 0);
    assert.equal(ledger.highest(), 0);
    assert.deepEqual(ledger.gaps(), []);
    assert.equal(ledger.count, 0);
  });

  test('adjacent ranges merge into one', () => {
    const ledger = ledgerOf([1, 5], [6, 10]);
    assert.deepEqual(ledger.toArray(), [[1, 10]]);
    assert.equal(ledger.count, 10);
  });

  test('overlapping and contained ranges merge without double counting', () => {
    const ledger = ledgerOf([1, 5], [3, 8], [2, 4], [8, 8]);
    assert.deepEqual(ledger.toArray(), [[1, 8]]);
    assert.equal(ledger.count, 8);
  });

  test('a range filling a hole merges its neighbours on both sides', () => {
    const ledger = ledgerOf([1, 3], [7, 9], [20, 25], [5, 5]);
    assert.deepEqual(ledger.toArray(), [[1, 3], [5, 5], [7, 9], [20, 25]]);
    ledger.add(4, 6);
    assert.deepEqual(ledger.toArray(), [[1, 9], [20, 25]]);
    ledger.add(2, 30);
    assert.deepEqual(ledger.toArray(), [[1, 30]]);
    assert.equal(ledger.count, 30);
  });

  test('out-of-order adds give the same ranges as in-order adds', () => {
    const a = ledgerOf([10, 12], [1, 2], [5, 6], [3, 4], [13, 13]);
    assert.deepEqual(a.toArray(), [[1, 6], [10, 13]]);
    assert.equal(a.count, 10);
  });

  test('watermark is the end of the first range only when it starts at 1', () => {
    assert.equal(ledgerOf([1, 7], [9, 10]).watermark(), 7);
    assert.equal(ledgerOf([2, 7]).watermark(), 0);
  });

  test('gaps lie between the watermark and the highest seq, lowest first', () => {
    const ledger = ledgerOf([1, 5], [11, 15], [18, 20]);
    assert.deepEqual(ledger.gaps(), [[6, 10], [16, 17]]);
    assert.deepEqual(ledgerOf([4, 6]).gaps(), [[1, 3]]);
    assert.equal(ledger.highest(), 20);
    assert.equal(ledger.missingCount(), 7);
  });

  test(`the gap list is capped (default ${MAX_GAPS}, the ack schema's maxItems)`, () => {
    const ledger = new StreamLedger();
    for (let i = 0; i < 150; i += 1) ledger.add(2 * i + 2, 2 * i + 2); // 2, 4, 6, ... leaves 1, 3, 5, ... missing
    const gaps = ledger.gaps();
    assert.equal(gaps.length, MAX_GAPS);
    assert.deepEqual(gaps[0], [1, 1]);
    assert.deepEqual(gaps[99], [199, 199]);
    assert.equal(ledger.gaps(3).length, 3);
    assert.equal(ledger.missingCount(), 150);
  });

  test('has() answers membership at range edges', () => {
    const ledger = ledgerOf([3, 5], [9, 9]);
    assert.deepEqual([2, 3, 5, 6, 8, 9, 10].map((s) => ledger.has(s)), [false, true, true, false, false, true, false]);
  });

  test('missingFrom returns the new records as contiguous runs', () => {
    const ledger = ledgerOf([3, 4], [8, 8]);
    const runs = ledger.missingFrom(makeRecords(1, 10));
    assert.deepEqual(
      runs.map((run) => run.map((r) => r.seq)),
      [[1, 2], [5, 6, 7], [9, 10]],
    );
    assert.deepEqual(ledgerOf([1, 10]).missingFrom(makeRecords(2, 9)), []);
  });

  test('add rejects ranges that are not 1 <= from <= to integers', () => {
    const ledger = new StreamLedger();
    assert.throws(() => ledger.add(0, 3), /1 <= from <= to/);
    assert.throws(() => ledger.add(5, 4), /1 <= from <= to/);
    assert.throws(() => ledger.add(1.5, 4), /1 <= from <= to/);
  });
});

describe('Ledger', () => {
  test('keeps streams apart by device, stream and epoch', () => {
    const ledger = new Ledger();
    ledger.stream('a', 'run', 'e1').add(1, 5);
    ledger.stream('a', 'run', 'e2').add(1, 2);
    ledger.stream('b', 'run', 'e1').add(3, 3);
    assert.equal(ledger.peek('a', 'run', 'e1')!.watermark(), 5);
    assert.equal(ledger.peek('a', 'run', 'e2')!.watermark(), 2);
    assert.equal(ledger.peek('b', 'run', 'e1')!.watermark(), 0);
    assert.equal(ledger.peek('a', 'door-cycle', 'e1'), undefined);
    assert.equal(ledger.entries().length, 3);
  });

  test('rebuild reads key names only and reports keys outside the layout', async () => {
    const dir = await tempDir();
    try {
      const archive = new LocalFolderArchive(dir.path);
      // The bodies are deliberately not record runs: rebuild must not read them.
      await archive.put(recordKey('dev:1', 'run', 'abcdef12', 1, 10), 'not json');
      await archive.put(recordKey('dev:1', 'run', 'abcdef12', 21, 30), 'x');
      await archive.put(recordKey('dev:1', 'run', 'abcdef12', 11, 15), 'x');
      await archive.put(recordKey('dev-2', 'motor', 'abcdef12', 2, 2), 'x');
      await archive.put('records/dev-2/motor/abcdef12/garbage.json', 'x');
      await archive.put('health/dev-2/latest.json', '{}');
      const ignored: string[] = [];
      const ledger = await Ledger.rebuild(archive, (key) => ignored.push(key));
      const run = ledger.peek('dev:1', 'run', 'abcdef12')!;
      assert.equal(run.watermark(), 15);
      assert.deepEqual(run.gaps(), [[16, 20]]);
      assert.deepEqual(ledger.peek('dev-2', 'motor', 'abcdef12')!.toArray(), [[2, 2]]);
      assert.deepEqual(ignored, ['records/dev-2/motor/abcdef12/garbage.json']);
    } finally {
      await dir.remove();
    }
  });
});
