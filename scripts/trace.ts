/**
 * Follows one record from the sensor to the cloud archive and back, by its correlation id:
 * SensorAcquisition appended it, MqttPublisher published it (once per send), the cloud ingest
 * archived it, MqttPublisher applied the ack that covers it. It reads the JSON log lines of the
 * components (<root>/greengrass/logs/*.log), of the cloud ingest (<root>/cloud-ingest.log) and the
 * archive (<root>/cloud-archive), as `npm start` lays them out. The components log these lines at
 * debug level: run with LOG_LEVEL=debug, or set logLevel: debug by a deployment, to trace.
 *
 *   node dist/scripts/trace.js --root .local/run elevator-dev-01/door-cycle/<epoch>/42
 *   node dist/scripts/trace.js --root .local/run <envelopeId>        (traces its first record)
 *
 * Exit 0 when every stage was found, 1 when one is missing (it says which), 2 on bad usage.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { LocalFolderArchive } from '../cloud/archive';
import { recordKey } from '../cloud/keys';

export type TraceStage = 'appended' | 'published' | 'archived' | 'acked';
export const TRACE_STAGES: readonly TraceStage[] = ['appended', 'published', 'archived', 'acked'];

export interface TraceKey {
  device: string;
  stream: string;
  epoch: string;
  seq: number;
}

export interface TraceEvent {
  stage: TraceStage;
  at: string;
  component: string;
  correlationId?: string;
  detail: Record<string, unknown>;
}

export interface Trace {
  key: TraceKey;
  events: TraceEvent[];
  missing: TraceStage[];
  /** The archive object that holds the record, if any. */
  archiveKey: string | null;
}

/** `<device>/<stream>/<epoch>/<seq>` or an envelope id `<device>/<stream>/<epoch>/<from>-<to>`. */
export function parseTraceKey(text: string): TraceKey | undefined {
  const match = /^([^/]+)\/([^/]+)\/([^/]+)\/(\d+)(?:-(\d+))?$/.exec(text);
  if (!match) return undefined;
  return { device: match[1], stream: match[2], epoch: match[3], seq: Number(match[4]) };
}

function jsonLines(path: string): Array<Record<string, unknown>> {
  if (!existsSync(path)) return [];
  const out: Array<Record<string, unknown>> = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue; // the runtime's own "[runtime] Run: ..." lines
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // a line cut by a crash: nothing to follow in it
    }
  }
  return out;
}

function covers(entry: Record<string, unknown>, key: TraceKey): boolean {
  return entry.stream === key.stream && entry.epoch === key.epoch && typeof entry.seqFrom === 'number' && typeof entry.seqTo === 'number' && entry.seqFrom <= key.seq && key.seq <= entry.seqTo;
}

function stageOf(entry: Record<string, unknown>, key: TraceKey): TraceStage | undefined {
  const message = entry.message;
  if (message === 'records appended' && entry.thing === key.device && covers(entry, key)) return 'appended';
  if (message === 'envelope published' && entry.thing === key.device && covers(entry, key)) return 'published';
  if (message === 'records archived' && entry.device === key.device && covers(entry, key)) return 'archived';
  if (message === 'ack applied' && entry.thing === key.device && entry.stream === key.stream && entry.epoch === key.epoch && typeof entry.watermark === 'number' && entry.watermark >= key.seq) {
    return 'acked';
  }
  return undefined;
}

export async function traceRecord(root: string, key: TraceKey): Promise<Trace> {
  const logs = [join(root, 'cloud-ingest.log')];
  const componentLogs = join(root, 'greengrass', 'logs');
  if (existsSync(componentLogs)) for (const file of readdirSync(componentLogs)) if (file.endsWith('.log')) logs.push(join(componentLogs, file));
  const events: TraceEvent[] = [];
  for (const log of logs) {
    for (const entry of jsonLines(log)) {
      const stage = stageOf(entry, key);
      if (!stage) continue;
      const { message: _message, level: _level, timestamp, component, correlationId, ...detail } = entry;
      // An append and a publish are logged after they completed, when the next stage may already
      // have happened; their start times order them.
      const startedAt = stage === 'published' ? detail.sendStartedAt : stage === 'appended' ? detail.appendStartedAt : undefined;
      const at = typeof startedAt === 'string' ? startedAt : String(timestamp);
      events.push({ stage, at, component: String(component), ...(typeof correlationId === 'string' ? { correlationId } : {}), detail });
    }
  }
  // Only the first ack covering the record matters; later acks cover it too.
  const firstAck = events.filter((e) => e.stage === 'acked').sort((a, b) => a.at.localeCompare(b.at))[0];
  const kept = events.filter((e) => e.stage !== 'acked' || e === firstAck).sort((a, b) => a.at.localeCompare(b.at) || TRACE_STAGES.indexOf(a.stage) - TRACE_STAGES.indexOf(b.stage));
  const archiveKey = await archivedObject(join(root, 'cloud-archive'), key);
  const missing = TRACE_STAGES.filter((stage) => !kept.some((e) => e.stage === stage) || (stage === 'archived' && archiveKey === null));
  return { key, events: kept, missing, archiveKey };
}

/** The records object whose range holds the seq, read to make sure the record is really in it. */
async function archivedObject(archiveRoot: string, key: TraceKey): Promise<string | null> {
  if (!existsSync(archiveRoot)) return null;
  const archive = new LocalFolderArchive(archiveRoot);
  const prefix = recordKey(key.device, key.stream, key.epoch, 1, 1).replace(/[^/]+$/, '');
  for (const objectKey of await archive.list(prefix)) {
    const match = /(\d+)-(\d+)\.json$/.exec(objectKey);
    if (!match || Number(match[1]) > key.seq || key.seq > Number(match[2])) continue;
    const body = JSON.parse((await archive.get(objectKey))!.toString('utf8')) as { records: Array<{ seq: number }> };
    if (body.records.some((r) => r.seq === key.seq)) return objectKey;
  }
  return null;
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { root: { type: 'string', default: '.local/run' }, json: { type: 'boolean', default: false } } });
  const key = positionals.length === 1 ? parseTraceKey(positionals[0]) : undefined;
  if (!key) {
    process.stderr.write('usage: node dist/scripts/trace.js [--root .local/run] [--json] <device>/<stream>/<epoch>/<seq> | <envelopeId>\n');
    return 2;
  }
  const trace = await traceRecord(values.root!, key);
  if (values.json) {
    process.stdout.write(`${JSON.stringify(trace)}\n`);
  } else {
    for (const event of trace.events) process.stdout.write(`${event.at}  ${event.component.padEnd(18)} ${event.stage.padEnd(10)} ${event.correlationId ?? JSON.stringify(event.detail)}\n`);
    process.stdout.write(trace.archiveKey ? `archive object: ${trace.archiveKey}\n` : 'archive object: none holds this record\n');
    if (trace.missing.length > 0) process.stdout.write(`missing: ${trace.missing.join(', ')} (are the components logging at debug level?)\n`);
  }
  return trace.missing.length === 0 ? 0 : 1;
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (error) => {
      process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
      process.exit(2);
    },
  );
}

