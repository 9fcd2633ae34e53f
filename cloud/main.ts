import { parseArgs } from 'node:util';
import { createLogger, errorMessage } from '../components/shared/logger';
import { alertSinksFromFlags, archiveFromFlags, exitOnSignals, numberFlag, SHARED_CLOUD_OPTIONS, SHARED_CLOUD_USAGE, tlsFromFlags } from './cli-flags';
import { createIngestClient } from './connection';
import { endMqttClient } from '../components/shared/mqtt-end';
import { CloudIngest, type IntegrityMode } from './ingest';
import { instanceStatusKey } from './keys';

const USAGE = `usage: node dist/cloud/main.js ${SHARED_CLOUD_USAGE}
       [--integrity inline | checker] [--share-group GROUP]
       [--gap-grace-ms 10000] [--backfill-retry-ms 30000]
       [--health-interval-ms 30000] [--stale-after-intervals 3] [--backlog-growing-ms 600000] [--permanent-gap-hold-ms 3600000]
--integrity inline (default): this one process archives, acks and asks for backfill; alerts go to the log and <archive>/_alerts/.
--integrity checker: archive only, and run node dist/cloud/checker-main.js beside it; --share-group GROUP makes this process
one of several instances on $share/GROUP/... (needs checker; each instance needs its own --client-id). Alerts go to the log.`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      ...SHARED_CLOUD_OPTIONS,
      integrity: { type: 'string', default: 'inline' },
      'share-group': { type: 'string' },
      'gap-grace-ms': { type: 'string' },
      'backfill-retry-ms': { type: 'string' },
      'health-interval-ms': { type: 'string' },
      'stale-after-intervals': { type: 'string' },
      'backlog-growing-ms': { type: 'string' },
      'permanent-gap-hold-ms': { type: 'string' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (values.integrity !== 'inline' && values.integrity !== 'checker') throw new Error(`--integrity must be inline or checker, got "${values.integrity}"`);
  const integrity: IntegrityMode = values.integrity;
  const shareGroup = values['share-group'];
  const app = values.app;
  // Stable by default: the broker keeps the persistent session under this id across restarts.
  const clientId = values['client-id'] ?? `${app}-cloud-ingest`;
  const logger = createLogger('CloudIngest', { app, clientId });
  const { archive, location } = archiveFromFlags(values);
  const alertSinks = alertSinksFromFlags(values, logger, integrity === 'inline' ? archive : undefined);
  // A member of a group takes a clean session: a persistent one would keep receiving its share of
  // the messages while the member is dead, held for a return that may never come. The devices'
  // resends, not the broker's queue, make the group lossless.
  const client = createIngestClient(values.broker, clientId, logger, { tls: tlsFromFlags(values), clean: shareGroup !== undefined });
  // Built in the same tick as the client, so the ingest's listener is attached before any message arrives.
  const ingest = new CloudIngest({
    client,
    archive,
    app,
    logger,
    integrity,
    shareGroup,
    statusKey: shareGroup === undefined ? undefined : instanceStatusKey(clientId),
    gapGraceMs: numberFlag('gap-grace-ms', values['gap-grace-ms']),
    backfillRetryMs: numberFlag('backfill-retry-ms', values['backfill-retry-ms']),
    healthIntervalMs: numberFlag('health-interval-ms', values['health-interval-ms']),
    staleAfterIntervals: numberFlag('stale-after-intervals', values['stale-after-intervals']),
    backlogGrowingMs: numberFlag('backlog-growing-ms', values['backlog-growing-ms']),
    permanentGapHoldMs: numberFlag('permanent-gap-hold-ms', values['permanent-gap-hold-ms']),
    alertSinks,
  });

  exitOnSignals(logger, async () => {
    await ingest.stop();
    await endMqttClient(client, 5000);
  });

  logger.info('starting cloud ingest', { broker: values.broker, archive: location, integrity, filters: ingest.filters, alertSinks: alertSinks.map((sink) => sink.name) });
  await ingest.start();
}

main().catch((error) => {
  // Bad flags or an unreadable archive: nothing will fix itself, so exit non-zero with the reason.
  process.stderr.write(`cloud ingest: ${errorMessage(error)}\n${USAGE}\n`);
  process.exit(1);
});
