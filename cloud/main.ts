import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createLogger, errorMessage } from '../components/shared/logger';
import { APP } from '../components/shared/topics';
import { LocalFolderArchive } from './archive';
import { createIngestClient, endClient } from './connection';
import { CloudIngest } from './ingest';

const USAGE = `usage: node dist/cloud/main.js [--broker mqtt://127.0.0.1:1883] [--archive .local/cloud-archive] [--app ${APP}] [--client-id <app>-cloud-ingest] [--gap-grace-ms 10000] [--backfill-retry-ms 30000]`;

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
  const archiveRoot = resolve(values.archive);
  const logger = createLogger('CloudIngest', { app, clientId });

  const archive = new LocalFolderArchive(archiveRoot);
  const client = createIngestClient(values.broker, clientId, logger);
  // Built in the same tick as the client, so the ingest's listener is attached before any message arrives.
  const ingest = new CloudIngest({
    client,
    archive,
    app,
    logger,
    gapGraceMs: numberFlag('gap-grace-ms', values['gap-grace-ms']),
    backfillRetryMs: numberFlag('backfill-retry-ms', values['backfill-retry-ms']),
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

  logger.info('starting cloud ingest', { broker: values.broker, archive: archiveRoot, filter: ingest.filter });
  await ingest.start();
}

main().catch((error) => {
  // Bad flags or an unreadable archive: nothing will fix itself, so exit non-zero with the reason.
  process.stderr.write(`cloud ingest: ${errorMessage(error)}\n${USAGE}\n`);
  process.exit(1);
});
