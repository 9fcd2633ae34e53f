import { resolve } from 'node:path';
import type { ParseArgsConfig } from 'node:util';
import { errorMessage, type Logger } from '../components/shared/logger';
import { APP } from '../components/shared/topics';
import { LocalFolderArchive, type ArchiveBackend } from './archive';
import { ArchiveFileSink, LogSink, SnsSink, WebhookSink } from './alert-sinks';
import type { AlertSink } from './alerts';
import { parseS3Url, S3ArchiveBackend } from './s3-archive';
import type { BrokerTlsFiles } from '../components/shared/broker-tls';

/**
 * The flags the cloud processes (the ingest and the integrity checker) share, so both name the
 * broker, the archive, TLS and the alert sinks the same way.
 */
export const SHARED_CLOUD_OPTIONS = {
  broker: { type: 'string', default: 'mqtt://127.0.0.1:1883' },
  cert: { type: 'string' },
  key: { type: 'string' },
  ca: { type: 'string' },
  archive: { type: 'string', default: '.local/cloud-archive' },
  's3-region': { type: 'string' },
  's3-endpoint': { type: 'string' },
  app: { type: 'string', default: APP },
  'client-id': { type: 'string' },
  'alert-webhook': { type: 'string' },
  'alert-sns-topic': { type: 'string' },
  'alert-region': { type: 'string' },
  'alert-sns-endpoint': { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
} as const satisfies ParseArgsConfig['options'];

export const SHARED_CLOUD_USAGE = `[--broker mqtt://127.0.0.1:1883] [--cert client.pem.crt --key private.pem.key] [--ca AmazonRootCA1.pem]
       [--archive .local/cloud-archive | s3://<bucket>[/<prefix>]] [--s3-region us-east-1] [--s3-endpoint URL] [--app ${APP}] [--client-id ID]
       [--alert-webhook URL] [--alert-sns-topic ARN] [--alert-region REGION] [--alert-sns-endpoint URL]`;

type SharedValues = { [K in keyof typeof SHARED_CLOUD_OPTIONS]?: string | boolean };

export function numberFlag(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isFinite(value) || value < 0) throw new Error(`--${name} must be a non-negative number, got "${text}"`);
  return value;
}

/** The archive the flags name, and its printable location. */
export function archiveFromFlags(values: SharedValues): { archive: ArchiveBackend; location: string } {
  const archiveFlag = String(values.archive);
  const region = values['s3-region'] as string | undefined;
  const endpoint = values['s3-endpoint'] as string | undefined;
  if (archiveFlag.startsWith('s3://')) {
    return { archive: new S3ArchiveBackend({ ...parseS3Url(archiveFlag), region, endpoint }), location: archiveFlag };
  }
  if (region !== undefined || endpoint !== undefined) throw new Error('--s3-region and --s3-endpoint need --archive s3://<bucket>[/<prefix>]');
  const location = resolve(archiveFlag);
  return { archive: new LocalFolderArchive(location), location };
}

/** The log sink, the archive's _alerts/ when asked, and the webhook and SNS sinks the flags add. */
export function alertSinksFromFlags(values: SharedValues, logger: Logger, archive: ArchiveBackend | undefined): AlertSink[] {
  const sinks: AlertSink[] = [new LogSink(logger)];
  if (archive) sinks.push(new ArchiveFileSink(archive));
  if (values['alert-webhook'] !== undefined) sinks.push(new WebhookSink({ url: String(values['alert-webhook']) }));
  if (values['alert-sns-topic'] !== undefined) {
    sinks.push(new SnsSink({ topicArn: String(values['alert-sns-topic']), region: values['alert-region'] as string | undefined, endpoint: values['alert-sns-endpoint'] as string | undefined }));
  } else if (values['alert-region'] !== undefined || values['alert-sns-endpoint'] !== undefined) {
    throw new Error('--alert-region and --alert-sns-endpoint need --alert-sns-topic');
  }
  return sinks;
}

export function tlsFromFlags(values: SharedValues): BrokerTlsFiles {
  return { certPath: values.cert as string | undefined, keyPath: values.key as string | undefined, caPath: values.ca as string | undefined };
}

/**
 * SIGTERM and SIGINT run `stop` once, then exit 0 (1 if stopping failed). The exit is explicit:
 * an MQTT client's sockets and timers could keep the process alive after a clean stop.
 */
export function exitOnSignals(logger: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info('shutting down', { signal });
    stop().then(
      () => process.exit(0),
      (error) => {
        logger.error('shutdown failed', { error: errorMessage(error) });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}
