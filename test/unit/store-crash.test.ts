import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { StreamStore } from '../../components/shared/store';
import { captureLogger } from '../helpers/capture-logger';
import { rawAll } from '../helpers/raw-sqlite';

const WRITER = join(__dirname, '..', 'helpers', 'store-writer.js');
/**
 * Each operation of the writer, with roughly how long one takes in it (ms, measured on a dev
 * machine): a targeted kill lands a random time within that after the writer announced it.
 */
const OPS: Record<string, number> = { append: 100, markSent: 6, applyAck: 3, requeueRange: 6, enforceRetention: 50 };


interface Killed {
  /** The operation the writer had announced last when it was killed (output may lag slightly). */
  lastOp: string | null;
  /** Highest seq per stream the writer was told was committed. */
  committed: Map<string, number>;
}

/**
 * Runs the writer and SIGKILLs it: once it has announced `target` (after `delayMs` more), or,
 * with no target, `delayMs` after it is ready.
 */
function runAndKill(path: string, target: string | null, delayMs: number): Promise<Killed> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(process.execPath, [WRITER, path], { env: { ...process.env, LOG_LEVEL: 'error' }, stdio: ['ignore', 'pipe', 'pipe'] });
    const committed = new Map<string, number>();
    let lastOp: string | null = null;
    let killedDuring: string | null = null;
    let buffered = '';
    let errors = '';
    let armed = false;
    let rounds = 0;
    const arm = () => {
      if (armed) return;
      armed = true;
      setTimeout(() => {
        killedDuring = lastOp;
        child.kill('SIGKILL');
      }, delayMs);
    };
    child.stderr.on('data', (chunk: Buffer) => (errors += chunk.toString()));
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        if (line === 'READY' && target === null) arm();
        if (line.startsWith('OP ')) {
          lastOp = line.slice(3);
          if (line === 'OP append') rounds += 1;
          // Let the writer do a full round first, so every operation has data to work on.
          if (target !== null && line === `OP ${target}` && rounds >= 2) arm();
        }
        const c = /^C (\S+) (\d+)$/.exec(line);
        if (c) committed.set(c[1]!, Number(c[2]));
      }
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (signal !== 'SIGKILL') return reject(new Error(`writer ended on its own (code ${code}): ${errors}`));
      resolveRun({ lastOp: killedDuring, committed });
    });
  });
}

/** Every invariant the store promises after any crash. */
async function checkConsistent(path: string, epoch: string, committed: Map<string, number>, label: string): Promise<void> {
  const { logger, entries } = captureLogger();
  const store = await StreamStore.open(path, { owner: true, logger });
  try {
    assert.equal(store.epoch, epoch, `${label}: same epoch, no quarantine`);
    assert.deepEqual(
      readdirSync(dirname(path)).filter((f) => f.includes('corrupt')),
      [],
      label,
    );
    assert.equal(
      entries.some((e) => e.level === 'error'),
      false,
      `${label}: no error at open`,
    );
    assert.deepEqual(await rawAll(path, 'PRAGMA quick_check'), [{ quick_check: 'ok' }], label);

    const streams = await rawAll<{ stream: string; next_seq: number; watermark: number; backlog_records: number; backlog_bytes: number; unsent_records: number }>(
      path,
      'SELECT * FROM streams ORDER BY stream',
    );
    assert.deepEqual(
      streams.map((s) => s.stream),
      ['motor', 'raw', 'run'],
      label,
    );
    for (const s of streams) {
      const appended = s.next_seq - 1;
      const where = `${label} ${s.stream}`;
      assert.ok(appended >= (committed.get(s.stream) ?? 0), `${where}: every append the writer saw commit is there`);

      const recount = await rawAll<{ n: number; bytes: number | null; unsent: number | null; distinct_seqs: number; lo: number | null; hi: number | null }>(
        path,
        `SELECT COUNT(*) AS n, SUM(bytes) AS bytes, SUM(sent_at IS NULL) AS unsent, COUNT(DISTINCT seq) AS distinct_seqs, MIN(seq) AS lo, MAX(seq) AS hi
           FROM records WHERE stream = '${s.stream}'`,
      );
      const r = recount[0]!;
      assert.equal(r.distinct_seqs, r.n, `${where}: no duplicate seq`);
      assert.deepEqual([s.backlog_records, s.backlog_bytes, s.unsent_records], [r.n, r.bytes ?? 0, r.unsent ?? 0], `${where}: counters equal a recount`);
      if (r.n > 0) assert.ok(r.lo! > s.watermark && r.hi! <= appended, `${where}: stored seqs lie in (watermark, appended]`);

      // Every seq above the watermark is stored or inside exactly one drop range, never both.
      const present = new Set(
        (await rawAll<{ seq: number }>(path, `SELECT seq FROM records WHERE stream = '${s.stream}'`)).map((x) => x.seq),
      );
      const ranges = await rawAll<{ seq_from: number; seq_to: number; count: number }>(
        path,
        `SELECT seq_from, seq_to, count FROM drop_log WHERE stream = '${s.stream}' ORDER BY seq_from`,
      );
      const dropped = new Map<number, number>();
      for (const range of ranges) {
        assert.equal(range.count, range.seq_to - range.seq_from + 1, `${where}: a drop range is contiguous`);
        for (let seq = range.seq_from; seq <= range.seq_to; seq += 1) dropped.set(seq, (dropped.get(seq) ?? 0) + 1);
      }
      for (let seq = 1; seq <= appended; seq += 1) {
        const times = (present.has(seq) ? 1 : 0) + (dropped.get(seq) ?? 0);
        if (seq <= s.watermark) assert.ok(!present.has(seq) && (dropped.get(seq) ?? 0) <= 1, `${where}: seq ${seq} under the watermark`);
        else assert.equal(times, 1, `${where}: seq ${seq} accounted for exactly once`);
      }
      // Nothing is reported in this test, so nothing was pruned: the aggregate equals the ranges.
      const aggregate = await rawAll<{ n: number | null }>(path, `SELECT SUM(count) AS n FROM drops WHERE stream = '${s.stream}'`);
      assert.equal(aggregate[0]?.n ?? 0, ranges.reduce((n, x) => n + x.count, 0), `${where}: drops agrees with drop_log`);
    }
  } finally {
    await store.close();
  }
}

test('SIGKILL during append, markSent, applyAck, requeueRange or enforceRetention leaves a consistent store', { timeout: 180_000 }, async () => {
  const path = join(mkdtempSync(join(tmpdir(), 'store-crash-')), 'store.db');
  const { logger } = captureLogger();
  const first = await StreamStore.open(path, { owner: true, logger });
  const epoch = first.epoch;
  await first.close();

  const interrupted: string[] = [];
  const kills: Array<string | null> = [...Object.keys(OPS), ...Object.keys(OPS), null, null, null, null];
  for (const [k, target] of kills.entries()) {
    // Targeted kills land inside the operation's usual duration; untargeted ones at a random moment.
    const delay = Math.floor(Math.random() * (target === null ? 1000 : OPS[target]!));
    const killed = await runAndKill(path, target, delay);
    interrupted.push(killed.lastOp ?? 'start');
    await checkConsistent(path, epoch, killed.committed, `kill ${k + 1} (${target ?? 'random'}, during ${killed.lastOp})`);
  }
  assert.ok(new Set(interrupted).size >= 3, `kills landed during several operations: ${interrupted.join(', ')}`);
  // The drop log really was exercised by the writer.
  const reasons = await rawAll<{ reason: string }>(path, 'SELECT DISTINCT reason FROM drop_log ORDER BY reason');
  assert.deepEqual(
    reasons.map((r) => r.reason),
    ['age-cap', 'byte-cap'],
  );
});
