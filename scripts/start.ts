import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createLogger } from '../components/shared/logger';
import { Pipeline, parseDuration, type Progress } from './pipeline';

// npm start [-- --duration 20s] [--json] [--thing NAME] [--root DIR] [--broker URL] [--transport ipc|mqtt5] [--platform greengrass|standalone]
//   [--local-broker URL] [--cert FILE --key FILE] [--ca FILE] [--time-scale N] [--resume] [--view-port 8080|0|off]
const { values } = parseArgs({
  options: {
    duration: { type: 'string' },
    json: { type: 'boolean', default: false },
    thing: { type: 'string', default: 'elevator-dev-01' },
    root: { type: 'string', default: '.local/run' },
    broker: { type: 'string' },
    // MqttPublisher's data path: through the runtime's IoT bridge (ipc) or its own MQTT 5 connection to --broker (mqtt5).
    // Default: ipc under the runtime, mqtt5 standalone (the only one there).
    transport: { type: 'string' },
    // greengrass: the components under the local runtime. standalone: plain processes, no runtime (docs/RUN-WITHOUT-GREENGRASS.md).
    // Default: standalone with --transport mqtt5 (a device that talks MQTT 5 itself has no nucleus), else greengrass.
    platform: { type: 'string' },
    // Standalone: the device's local bus (heartbeats); default --broker when that is plain MQTT on this machine.
    'local-broker': { type: 'string' },
    // With an mqtts:// --broker: the client certificate, its key, and the CA that signed the broker's certificate.
    cert: { type: 'string' },
    key: { type: 'string' },
    ca: { type: 'string' },
    'time-scale': { type: 'string', default: '10' },
    'drain-timeout': { type: 'string', default: '120s' },
    resume: { type: 'boolean', default: false },
    // The cloud archive: the run's own folder by default, or s3://<bucket>[/<prefix>] (S3 or, with --endpoint, an S3-compatible store).
    archive: { type: 'string' },
    endpoint: { type: 'string' },
    region: { type: 'string' },
    // The fleet view (cloud/fleet-view): 0 picks a free port, off serves none.
    'view-port': { type: 'string', default: '8080' },
  },
});

const logger = createLogger('start', { thing: values.thing });
logger.level = process.env.LOG_LEVEL ?? 'warn';
const interactive = process.stdout.isTTY && !values.json;

function statusLine(p: Progress): string {
  return `[${p.phase.padEnd(8)}] sampled ${p.sampled}  stored ${p.stored}  sent ${p.sent}  acknowledged ${p.acked}  archived ${p.archived}  backlog ${p.backlog}  restarts ${p.restarts}`;
}

function parseViewPort(text: string): number | undefined {
  if (text === 'off') return undefined;
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--view-port must be 0..65535 or off, got "${text}"`);
  return port;
}

function parseTransport(text: string | undefined, platform: 'greengrass' | 'standalone'): 'ipc' | 'mqtt5' {
  if (text === undefined) return platform === 'standalone' ? 'mqtt5' : 'ipc';
  if (text !== 'ipc' && text !== 'mqtt5') throw new Error(`--transport must be ipc or mqtt5, got "${text}"`);
  return text;
}

function parsePlatform(text: string): 'greengrass' | 'standalone' {
  if (text !== 'greengrass' && text !== 'standalone') throw new Error(`--platform must be greengrass or standalone, got "${text}"`);
  return text;
}

/** --cert/--key/--ca only make sense for an mqtts:// --broker; the pair must be complete. */
function parseTls(broker: string | undefined): { certPath?: string; keyPath?: string; caPath?: string } | undefined {
  const { cert, key, ca } = values;
  if (cert === undefined && key === undefined && ca === undefined) return undefined;
  if (!broker?.startsWith('mqtts://')) throw new Error(`--cert, --key and --ca go with an mqtts:// --broker, got ${broker ? `"${broker}"` : 'none'}`);
  if ((cert === undefined) !== (key === undefined)) throw new Error('--cert and --key go together (mutual TLS needs both)');
  return { certPath: cert && resolve(cert), keyPath: key && resolve(key), caPath: ca && resolve(ca) };
}

/** s3://<bucket>[/<prefix>] or nothing (the run's folder); --endpoint and --region only go with it. */
function parseArchive(text: string | undefined, s3Flag: string | undefined): string | undefined {
  if (text === undefined) {
    if (s3Flag !== undefined) throw new Error('--endpoint and --region need --archive s3://<bucket>[/<prefix>]');
    return undefined;
  }
  if (!text.startsWith('s3://')) throw new Error(`--archive must be s3://<bucket>[/<prefix>] (the default is the run's own folder), got "${text}"`);
  return text;
}

async function main(): Promise<number> {
  const platform = parsePlatform(values.platform ?? (values.transport === 'mqtt5' ? 'standalone' : 'greengrass'));
  const pipeline = new Pipeline({
    root: values.root!,
    thingName: values.thing!,
    durationMs: values.duration ? parseDuration(values.duration) : undefined,
    drainTimeoutMs: parseDuration(values['drain-timeout']!),
    brokerUrl: values.broker,
    publisherTransport: parseTransport(values.transport, platform),
    platform,
    localBrokerUrl: values['local-broker'],
    brokerTls: parseTls(values.broker),
    archiveUrl: parseArchive(values.archive, values.endpoint ?? values.region),
    s3Endpoint: values.endpoint,
    s3Region: values.region,
    resume: values.resume!,
    timeScale: Number(values['time-scale']),
    viewPort: parseViewPort(values['view-port']!),
    onViewStarted: (url) => process.stderr.write(`fleet view: ${url}\n`),
    logger,
    onProgress: (p) => {
      // One live line on a terminal; one line per second to stderr otherwise, keeping stdout for the summary.
      if (interactive) process.stdout.write(`\r\x1b[2K${statusLine(p)}`);
      else process.stderr.write(`${statusLine(p)}\n`);
    },
  });
  let interrupted = 0;
  process.on('SIGINT', () => {
    interrupted += 1;
    if (interrupted > 1) process.exit(130);
    process.stderr.write('\nstopping sampling; draining (Ctrl-C again to abort)\n');
    pipeline.requestStop();
  });
  process.on('SIGTERM', () => pipeline.requestStop());
  const summary = await pipeline.run();
  if (interactive) process.stdout.write('\n');
  if (!values.json) {
    process.stdout.write(
      [
        `produced ${summary.produced}, archived ${summary.archived}, missing ${summary.missing}, duplicates dropped ${summary.duplicatesDropped}`,
        `dropped by retention ${summary.droppedByRetention}, rejected at the cloud ${summary.rejectedAtCloud}, quarantined on the device ${summary.quarantinedOnDevice}, invalid at the cloud ${summary.invalidAtCloud}, drained: ${summary.drained}`,
        ...summary.streams.map((s) => `  ${s.stream.padEnd(12)} produced ${s.produced}  archived ${s.archived}  watermark ${s.watermark}  missing ${s.missing}`),
        ...Object.entries(summary.health).map(([device, health]) => `  health of ${device}: ${health ? `${health.status}${health.reasons.length > 0 ? ` (${health.reasons.join('; ')})` : ''}` : 'none received'}`),
        `logs and data: ${values.root}${platform === 'standalone' ? ' (device configuration in device/etc, component logs in device/logs)' : ''}`,
        '',
      ].join('\n'),
    );
  }
  process.stdout.write(`${JSON.stringify(summary)}\n`);
  return summary.drained && summary.missing === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error) => {
    logger.error('npm start failed', { error: error instanceof Error ? error.message : String(error) });
    process.exit(2);
  },
);
