import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createLogger, errorMessage } from '../components/shared/logger';
import { APP } from '../components/shared/topics';
import { LocalFolderArchive } from './archive';
import { parseS3Url, S3ArchiveBackend } from './s3-archive';
import { ArchiveFileSink, LogSink, SnsSink, WebhookSink } from './alert-sinks';
import type { AlertSink } from './alerts';
import { createIngestClient, endClient } from './connection';
import { CloudIngest } from './ingest';

const USAGE = `usage: node dist/cloud/main.js [--broker mqtt://127.0.0.1:1883] [--archive .local/cloud-archive | s3://<bucket>[/<prefix>]] [--s3-region us-east-1] [--s3-endpoint URL] [--app ${APP}] [--client-id <app>-cloud-ingest] [--gap-grace-ms 10000] [--backfill-retry-ms 30000]
       [--health-interval-ms 30000] [--stale-after-intervals 3] [--backlog-growing-ms 600000] [--permanent-gap-hold-ms 3600000]
       [--alert-webhook URL] [--alert-sns-topic ARN] [--alert-region REGION] [--alert-sns-endpoint URL]
alerts always go to the log and to <archive>/_alerts/; --alert-webhook and --alert-sns-topic add sinks.`;

function numberFlag(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isFinite(value) || value < 0) throw new Error(`--${name} must be a non-negative number, got "${text}"`);
  return value;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      broker: { type: 'string', default: 'mqtt://127.0.0.1:1883' },
      archive: { type: 'string', default: '.local/cloud-archive' },
      app: { type: 'string', default: APP },
      'client-id': { type: 'string' },
      'gap-grace-ms': { type: 'string' },
      'backfill-retry-ms': { type: 'string' },
      'health-interval-ms': { type: 'string' },
      'stale-after-intervals': { type: 'string' },
      'backlog-growing-ms': { type: 'string' },
      'permanent-gap-hold-ms': { type: 'string' },
      'alert-webhook': { type: 'string' },
      'alert-sns-topic': { type: 'string' },
      'alert-region': { type: 'string' },
      'alert-sns-endpoint': { type: 'string' },
      's3-region': { type: 'string' },
      's3-endpoint': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const app = values.app;
  // Stable by default: the broker keeps the persistent session under this id across restarts.
  const clientId = values['client-id'] ?? `${app}-cloud-ingest`;
  const archiveRoot = values.archive.startsWith('s3://') ? values.archive : resolve(values.archive);
  const logger = createLogger('CloudIngest', { app, clientId });

  const archive = archiveRoot.startsWith('s3://')
    ? new S3ArchiveBackend({ ...parseS3Url(archiveRoot), region: values['s3-region'], endpoint: values['s3-endpoint'] })
    : new LocalFolderArchive(archiveRoot);
  if (!archiveRoot.startsWith('s3://') && (values['s3-region'] !== undefined || values['s3-endpoint'] !== undefined)) {
    throw new Error('--s3-region and --s3-endpoint need --archive s3://<bucket>[/<prefix>]');
  }
  const alertSinks: AlertSink[] = [new LogSink(logger), new ArchiveFileSink(archive)];
  if (values['alert-webhook'] !== undefined) alertSinks.push(new WebhookSink({ url: values['alert-webhook'] }));
  if (values['alert-sns-topic'] !== undefined) {
    alertSinks.push(new SnsSink({ topicArn: values['alert-sns-topic'], region: values['alert-region'], endpoint: values['alert-sns-endpoint'] }));
  } else if (values['alert-region'] !== undefined || values['alert-sns-endpoint'] !== undefined) {
    throw new Error('--alert-region and --alert-sns-endpoint need --alert-sns-topic');
  }
  const client = createIngestClient(values.broker, clientId, logger);
  // Built in the same tick as the client, so the ingest's listener is attached before any message arrives.
  const ingest = new CloudIngest({
    client,
    archive,
    app,
    logger,
    gapGraceMs: numberFlag('gap-grace-ms', values['gap-grace-ms']),
    backfillRetryMs: numberFlag('backfill-retry-ms', values['backfill-retry-ms']),
    healthIntervalMs: numberFlag('health-interval-ms', values['health-interval-ms']),
    staleAfterIntervals: numberFlag('stale-after-intervals', values['stale-after-intervals']),
    backlogGrowingMs: numberFlag('backlog-growing-ms', values['backlog-growing-ms']),
    permanentGapHoldMs: numberFlag('permanent-gap-hold-ms', values['permanent-gap-hold-ms']),
    alertSinks,
  });

  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info('shutting down', { signal });
    ingest
      .stop()
      .then(() => endClient(client, 5000))
      .then(
        () => process.exit(0),
        (error) => {
          logger.error('shutdown failed', { error: errorMessage(error) });
          process.exit(1);
        },
      );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));

  logger.info('starting cloud ingest', { broker: values.broker, archive: archiveRoot, filters: ingest.filters, alertSinks: alertSinks.map((sink) => sink.name) });
  await ingest.start();
}

main().catch((error) => {
  // Bad flags or an unreadable archive: nothing will fix itself, so exit non-zero with the reason.
  process.stderr.write(`cloud ingest: ${errorMessage(error)}\n${USAGE}\n`);
  process.exit(1);
});
