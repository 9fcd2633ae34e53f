import { parseArgs } from 'node:util';
import { createLogger } from '../components/shared/logger';
import { ChaosHarness, type ChaosReport, type TimelineEvent } from '../test/chaos/harness';
import { parseDuration } from './pipeline';

// npm run chaos [-- --duration 120s] [--json] [--seed N] [--transport ipc|mqtt5] [--drain-timeout 180s] [--root DIR]
const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '120s' },
    json: { type: 'boolean', default: false },
    seed: { type: 'string' },
    'drain-timeout': { type: 'string', default: '180s' },
    root: { type: 'string' },
    thing: { type: 'string', default: 'chaos-elevator-01' },
    transport: { type: 'string', default: 'ipc' },
  },
});

if (values.transport !== 'ipc' && values.transport !== 'mqtt5') {
  process.stderr.write(`--transport must be ipc (through the runtime's spooler) or mqtt5 (MqttPublisher's own MQTT 5 connection), got ${JSON.stringify(values.transport)}\n`);
  process.exit(2);
}
const transport: 'ipc' | 'mqtt5' = values.transport;
const logger = createLogger('chaos', { thing: values.thing });
logger.level = process.env.LOG_LEVEL ?? 'error';
const seedText = values.seed ?? process.env.CHAOS_SEED;
const seed = seedText !== undefined ? Number(seedText) : Math.floor(Math.random() * 2 ** 31);

function line(event: TimelineEvent): string {
  const at = `${event.atSec.toFixed(1).padStart(6)} s`;
  if (event.kind === 'sample') return `${at}  backlog ${String(event.backlog ?? '').padStart(6)}  archived ${String(event.archived ?? '').padStart(7)}`;
  return `${at}  ${event.kind === 'fault' ? 'FAULT   ' : event.kind === 'recovered' ? 'recovered' : 'note    '}  ${event.text}`;
}

function table(report: ChaosReport): string {
  const rows = report.streams.map(
    (s) => `  ${s.stream.padEnd(11)} ${s.epoch.slice(0, 8)}  sampled ${String(s.sampled).padStart(7)}  archived ${String(s.archived).padStart(7)}  dropped ${String(s.droppedByPolicy).padStart(5)}  epoch loss ${String(s.epochLoss).padStart(5)}  lost ${s.lost}`,
  );
  const verdict = Object.entries(report.guarantees).map(([name, ok]) => `  ${ok ? 'ok  ' : 'FAIL'} ${name}`);
  return [
    `seed ${seed}, transport ${report.transport}`,
    `sampled ${report.sampled}, archived ${report.archived}, lost ${report.lost}, duplicates in archive ${report.duplicatesInArchive}`,
    `dropped by policy ${JSON.stringify(report.droppedByPolicy)}, epoch loss ${report.epochLoss} (expected ${report.epochLossExpected}, at risk ${report.epochAtRisk})`,
    `faults ${JSON.stringify(report.faults)}${report.notFired.length ? `, not fired: ${report.notFired.join(', ')}` : ''}`,
    ...Object.entries(report.notApplicable).map(([fault, reason]) => `not applicable: ${fault} (${reason})`),
    ...rows,
    ...verdict,
  ].join('\n');
}

async function main(): Promise<number> {
  const harness = new ChaosHarness({
    root: values.root,
    durationMs: parseDuration(values.duration!),
    drainTimeoutMs: parseDuration(values['drain-timeout']!),
    thingName: values.thing!,
    seed,
    logger,
    transport,
    onEvent: (event) => {
      if (!values.json) process.stdout.write(`${line(event)}\n`);
    },
  });
  const report = await harness.run();
  if (!values.json) process.stdout.write(`\n${table(report)}\n`);
  process.stdout.write(`${JSON.stringify({ seed, ...report, timeline: values.json ? report.timeline : undefined })}\n`);
  return report.ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error) => {
    logger.error('chaos run failed', { error: error instanceof Error ? error.stack : String(error) });
    process.stderr.write(`chaos run failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(2);
  },
);
