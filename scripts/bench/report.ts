import type { EnvelopeSize } from './envelope-size';
import type { MachineInfo } from './machine';
import type { StepResult } from './sustained';
import type { FootprintResult } from './ours-scenarios';

/** The JSON object `npm run bench -- --json` prints as its last line (issue 9's shape, plus context fields). */
export interface DrainFigures {
  recordsPerSec: number;
  bytesPerSec: number;
  quotaUtilization: number;
  backlogRecords: number;
  recoverySeconds: number | null;
  publishesPerSec: number;
}

export interface BenchReport {
  machine: MachineInfo;
  mode: 'full' | 'smoke';
  append: { recordsPerSec: number; records: number; recordsPerTransaction: number; before: { rowsPerInsert: number; recordsPerSec: number } };
  sustained: { recordsPerSec: number; vsBaseline: number; offeredPerSec: number; holdSeconds: number; flat: boolean; backlogGrowthPerSec: number; steps: StepResult[] };
  drain: { recordsPerSec: number; bytesPerSec: number; quotaUtilization: number; vsBaseline: number; publishesPerSec: number; backlogRecords: number; bytesPerRecord: number; fillRecordsPerSec: number; reconnectSeconds: number | null;
    compression: string;
    /** The same drain with compression off, from the same run; null where the publisher has no such setting. */
    before: ({ compression: string } & DrainFigures) | null;
    beforeSmallEnvelopes: ({ maxRecordsPerEnvelope: number } & DrainFigures) | null;
  };
  /** Not a scenario: envelope weight today and with gzip, to size what compression would buy under the quota. */
  envelope: EnvelopeSize;
  latency: { p50Ms: number; p99Ms: number; maxMs: number; records: number; sampledPerSec: number };
  footprint: FootprintResult & {
    /** The components' Node options as shipped (each recipe's nodeOptions default). */
    nodeOptions: string;
    /** The same scenario, same run, with Node's own defaults (nodeOptions empty). */
    before: { nodeOptions: string; rssMiB: Record<string, number>; cpuSecPer10k: number; cpuSecPer10kByComponent: Record<string, number> };
  };
  recovery: { seconds: number | null; backlogRecords: number; drained: boolean };
  baseline: {
    sustainedRecordsPerSec: number;
    sustainedSteps: StepResult[];
    drainRecordsPerSec: number;
    drainBytesPerSec: number;
    drainFirstDeliverySeconds: number | null;
    /** Projected: the baseline cannot drain a backlog this size under the quotas within a bench run. */
    recoverySeconds: number;
    recoveryProjected: boolean;
    lostOnKill: number;
    lostOnKillOurs: number | null;
    drainBacklogRecords: number;
    queuedAtKill: number;
    rssMiB: number;
  };
  targets: TargetCheck[];
  seconds: number;
}

export interface TargetCheck {
  name: string;
  target: string;
  measured: number | null;
  met: boolean;
}

/** The issue's targets: printed next to the figures, never asserted. */
export function checkTargets(r: Omit<BenchReport, 'targets' | 'seconds'>): TargetCheck[] {
  const at = (name: string, target: string, measured: number | null, ok: (v: number) => boolean): TargetCheck => ({
    name,
    target,
    measured,
    met: measured !== null && Number.isFinite(measured) && ok(measured),
  });
  const maxRss = Math.max(...Object.values(r.footprint.rssMiB));
  return [
    at('sustained.vsBaseline', '>= 1.0', r.sustained.vsBaseline, (v) => v >= 1),
    at('drain.quotaUtilization', '>= 0.90 of 512 KiB/s', r.drain.quotaUtilization, (v) => v >= 0.9),
    at('drain.vsBaseline', '>= 200x', r.drain.vsBaseline, (v) => v >= 200),
    at('latency.p99Ms', '<= 250 ms at 1,000 records/s', r.latency.p99Ms, (v) => v <= 250),
    at('footprint.rssMiB (largest component)', '<= 80 MiB', maxRss, (v) => v <= 80),
    at('footprint.cpuSecPer10k', '<= 0.5 CPU-s', r.footprint.cpuSecPer10k, (v) => v <= 0.5),
    at(`recovery.seconds (${r.recovery.backlogRecords} records)`, '<= 30 s for 300,000 records', r.recovery.seconds, (v) => v <= 30 && r.recovery.backlogRecords >= 300_000),
    at('baseline.lostOnKillOurs', '= 0', r.baseline.lostOnKillOurs, (v) => v === 0),
  ];
}

/** Total and the busiest process over the last (hold) step. */
function coresAtHold(steps: StepResult[]): string {
  const cores = steps[steps.length - 1]?.cpuCores;
  if (!cores) return 'n/a';
  const [name, busiest] = Object.entries(cores)
    .filter(([key]) => key !== 'total')
    .sort((a, b) => b[1] - a[1])[0] ?? ['none', 0];
  return `${fmt(cores.total, 2)} (most: ${name} ${fmt(busiest, 2)})`;
}

function fmt(value: number | null | undefined, digits = 0): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return 'n/a';
  return value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

/** The readable table `npm run bench` prints. */
export function renderTable(r: BenchReport): string {
  const m = r.machine;
  const rows: Array<[string, string, string]> = [
    ['append', 'records/s committed (acquisition path)', `${fmt(r.append.recordsPerSec)} (one row per INSERT: ${fmt(r.append.before.recordsPerSec)})`],
    ['sustained', 'records/s acknowledged by the cloud', `${fmt(r.sustained.recordsPerSec)} (offered ${fmt(r.sustained.offeredPerSec)}, ${r.sustained.flat ? 'backlog flat' : `backlog grew ${fmt(r.sustained.backlogGrowthPerSec)}/s`})`],
    ['', 'vs baseline', `${fmt(r.sustained.vsBaseline, 2)}x`],
    ['', 'cores busy during the hold (ours / baseline)', `${coresAtHold(r.sustained.steps)} / ${coresAtHold(r.baseline.sustainedSteps)}`],
    ['drain', `records/s under IoT Core quotas (compression ${r.drain.compression})`, fmt(r.drain.recordsPerSec)],
    ...beforeRow(r.drain.before && `compression ${r.drain.before.compression}`, r.drain.before),
    ...beforeRow(r.drain.beforeSmallEnvelopes && `at most ${r.drain.beforeSmallEnvelopes.maxRecordsPerEnvelope} records per envelope`, r.drain.beforeSmallEnvelopes),
    ['', 'envelope bytes/s', `${fmt(r.drain.bytesPerSec / 1024, 1)} KiB/s (${fmt(r.drain.quotaUtilization * 100, 1)}% of 512 KiB/s)`],
    ['', 'publishes/s; envelope bytes per record', `${fmt(r.drain.publishesPerSec, 1)}; ${fmt(r.drain.bytesPerRecord, 1)} (gzip would make it ~${fmt(r.envelope.gzipBytesPerRecord, 1)})`],
    ['', 'vs baseline', `${fmt(r.drain.vsBaseline, 1)}x`],
    ['latency', 'sampling to archive at ~1,000 records/s', `p50 ${fmt(r.latency.p50Ms)} ms, p99 ${fmt(r.latency.p99Ms)} ms, max ${fmt(r.latency.maxMs)} ms (${fmt(r.latency.records)} records)`],
    ['footprint', 'peak RSS per component', Object.entries(r.footprint.rssMiB).map(([k, v]) => `${k} ${fmt(v, 1)}`).join(', ') + ' MiB'],
    ['', 'CPU-s per 10k records delivered', `${fmt(r.footprint.cpuSecPer10k, 2)} (with the runtime ${fmt(r.footprint.cpuSecPer10kWithRuntime, 2)}; cloud ingest ${fmt(r.footprint.ingestCpuSecPer10k, 2)})`],
    ['', '  by component', Object.entries(r.footprint.cpuSecPer10kByComponent).map(([k, v]) => `${k} ${fmt(v, 2)}`).join(', ')],
    ['', `  before: nodeOptions "${r.footprint.before.nodeOptions}" (shipped: "${r.footprint.nodeOptions}")`, `${Object.entries(r.footprint.before.rssMiB).map(([k, v]) => `${k} ${fmt(v, 1)}`).join(', ')} MiB; ${fmt(r.footprint.before.cpuSecPer10k, 2)} CPU-s per 10k`],
    ['recovery', `seconds to drain ${fmt(r.recovery.backlogRecords)} records`, r.recovery.drained ? fmt(r.recovery.seconds, 1) : 'did not drain in time'],
    ['baseline', 'sustained records/s', fmt(r.baseline.sustainedRecordsPerSec)],
    ['', 'drain records/s under quotas', fmt(r.baseline.drainRecordsPerSec, 1)],
    ['', `recovery seconds (${r.baseline.recoveryProjected ? 'projected' : 'measured'}, ${fmt(r.recovery.backlogRecords)} records)`, fmt(r.baseline.recoverySeconds)],
    ['', 'lost on kill during an outage (naive / ours)', `${fmt(r.baseline.lostOnKill)} of ${fmt(r.baseline.queuedAtKill)} / ${fmt(r.baseline.lostOnKillOurs)}`],
  ];
  const w0 = Math.max(...rows.map((row) => row[0].length));
  const w1 = Math.max(...rows.map((row) => row[1].length));
  const lines = [
    `machine: ${m.cpuModel}, ${m.cores} cores, ${m.memoryGiB} GiB, Node ${m.node}, ${m.os}, load ${m.loadAverage1m} at start`,
    `mode: ${r.mode}, ${fmt(r.seconds)} s`,
    '',
    ...rows.map(([a, b, c]) => `${a.padEnd(w0)}  ${b.padEnd(w1)}  ${c}`),
    '',
    'targets (printed, never asserted):',
    ...r.targets.map((t) => `  ${t.met ? 'met    ' : 'NOT MET'}  ${t.name.padEnd(42)} ${t.target.padEnd(30)} measured ${fmt(t.measured, 2)}`),
  ];
  return lines.join('\n');
}

/** Rounds every number for the JSON line: noise below these digits means nothing on a shared box. */
export function rounded<T>(value: T): T {
  return JSON.parse(JSON.stringify(value, (_key, v) => (typeof v === 'number' ? (Number.isInteger(v) ? v : Math.round(v * 1000) / 1000) : v)));
}

/** One "before" line of the drain: what was different, and its figures from the same run. */
function beforeRow(what: string | null, figures: DrainFigures | null): Array<[string, string, string]> {
  if (!what || !figures) return [];
  return [['', `  before: ${what}, ${fmt(figures.backlogRecords)} records`, `${fmt(figures.recordsPerSec)} records/s, ${fmt(figures.bytesPerSec / 1024, 1)} KiB/s (${fmt(figures.quotaUtilization * 100, 1)}%), drained in ${fmt(figures.recoverySeconds, 1)} s`]];
}
