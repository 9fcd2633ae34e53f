/**
 * A child process for the crash test (test/unit/store-crash.test.ts): opens the store as a
 * non-owner and loops forever over every kind of write the store has, in large transactions,
 * until it is killed. Before each operation it prints `OP <name>`; after each append it prints
 * `C <stream> <highest seq>` for what is now committed.
 * Usage: node store-writer.js <store path>
 */
import { StreamStore, type AppendInput } from '../../components/shared/store';
import { createLogger } from '../../components/shared/logger';

const STREAMS = [
  { stream: 'raw', priority: 0 },
  { stream: 'motor', priority: 1 },
  { stream: 'run', priority: 2 },
];
const PER_STREAM = 500;
const DAY = 86_400_000;

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

async function main(): Promise<void> {
  const path = process.argv[2];
  if (!path) throw new Error('usage: store-writer <store path>');
  const store = await StreamStore.open(path, { owner: false, logger: createLogger('store-writer') });
  say('READY');
  for (let round = 0; ; round += 1) {
    const now = Date.now();
    const batch: AppendInput[] = [];
    for (let i = 0; i < PER_STREAM; i += 1) {
      for (const { stream, priority } of STREAMS) {
        // Every tenth record is stamped two days old, so the age cap has work too.
        batch.push({ stream, priority, time: i % 10 === 0 ? now - 2 * DAY : now, mono: i, data: { round, i, pad: 'p'.repeat(120) } });
      }
    }
    say('OP append');
    const assigned = await store.append(batch);
    for (const { stream } of STREAMS) {
      const seqs = assigned.filter((a) => a.stream === stream).map((a) => a.seq);
      say(`C ${stream} ${Math.max(...seqs)}`);
    }
    const stats = await store.stats();
    const appended = (stream: string) => stats.streams.find((s) => s.stream === stream)?.appended ?? 0;

    say('OP markSent');
    for (const { stream } of STREAMS) await store.markSent(stream, Math.max(1, appended(stream) - 1200), appended(stream), now);

    say('OP applyAck');
    await store.applyAck('run', store.epoch, Math.max(0, appended('run') - 900));
    await store.applyAck('motor', store.epoch, Math.max(0, appended('motor') - 1400));

    say('OP requeueRange');
    await store.requeueRange('motor', store.epoch, Math.max(1, appended('motor') - 1300), appended('motor') + 50);
    await store.requeueRange('raw', store.epoch, Math.max(1, appended('raw') - 5000), appended('raw'));

    say('OP enforceRetention');
    await store.enforceRetention({ maxBytes: 400_000, maxAgeMs: DAY, now });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
