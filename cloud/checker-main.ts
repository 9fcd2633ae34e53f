import { parseArgs } from 'node:util';
import { createLogger, errorMessage } from '../components/shared/logger';
import { IntegrityChecker } from './checker';
import { alertSinksFromFlags, archiveFromFlags, exitOnSignals, numberFlag, SHARED_CLOUD_OPTIONS, SHARED_CLOUD_USAGE, tlsFromFlags } from './cli-flags';
import { createIngestClient } from './connection';
import { endMqttClient } from '../components/shared/mqtt-end';

const USAGE = `usage: node dist/cloud/checker-main.js ${SHARED_CLOUD_USAGE}
       [--interval-ms 5000] [--ack-repeat-ms 60000] [--gap-grace-ms 10000] [--backfill-retry-ms 30000] [--permanent-gap-hold-ms 3600000] [--once]
Reads the archive, sends acks and backfill requests, records epoch losses as permanent gaps, and keeps the alert view
(<archive>/_alerts/) and <archive>/_status/checker.json. --once runs a single pass and exits (for a scheduler).`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      ...SHARED_CLOUD_OPTIONS,
      'interval-ms': { type: 'string' },
      'ack-repeat-ms': { type: 'string' },
      'gap-grace-ms': { type: 'string' },
      'backfill-retry-ms': { type: 'string' },
      'permanent-gap-hold-ms': { type: 'string' },
      once: { type: 'boolean', default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const app = values.app;
  const clientId = values['client-id'] ?? `${app}-integrity-checker`;
  const logger = createLogger('IntegrityChecker', { app, clientId });
  const { archive, location } = archiveFromFlags(values);
  const alertSinks = alertSinksFromFlags(values, logger, archive);
  // Publishes only: a clean session, so nothing queues for the checker while it is down.
  const client = createIngestClient(values.broker, clientId, logger, { tls: tlsFromFlags(values), clean: true });
  const checker = new IntegrityChecker({
    archive,
    client,
    app,
    logger,
    alertSinks,
    intervalMs: numberFlag('interval-ms', values['interval-ms']),
    ackRepeatMs: numberFlag('ack-repeat-ms', values['ack-repeat-ms']),
    gapGraceMs: numberFlag('gap-grace-ms', values['gap-grace-ms']),
    backfillRetryMs: numberFlag('backfill-retry-ms', values['backfill-retry-ms']),
    permanentGapHoldMs: numberFlag('permanent-gap-hold-ms', values['permanent-gap-hold-ms']),
  });
  logger.info('starting integrity checker', { broker: values.broker, archive: location, once: values.once });
  if (values.once) {
    await checker.checkOnce();
    await endMqttClient(client, 5000);
    logger.info('integrity pass done', { stats: checker.stats() });
    process.exit(0);
  }

  exitOnSignals(logger, async () => {
    await checker.stop();
    await endMqttClient(client, 5000);
  });
  await checker.start();
}

main().catch((error) => {
  process.stderr.write(`integrity checker: ${errorMessage(error)}\n${USAGE}\n`);
  process.exit(1);
});
