import { PublishCommand, SNSClient, type SNSClientConfig } from '@aws-sdk/client-sns';
import { Backoff, sleep } from '../components/shared/backoff';
import { errorMessage, type Logger } from '../components/shared/logger';
import type { ArchiveBackend } from './archive';
import type { AlertEvent, AlertSink } from './alerts';
import { encodeKeySegment } from './keys';

/**
 * The places an alert event goes. Each sink does one job; the AlertManager runs them in the
 * background, one chain per sink, and counts a sink's failure without ever stopping the ingest.
 */

/** `{updatedAt, alerts}`: every alert firing now. The fleet view page reads exactly this key and shape. */
export const ALERTS_ACTIVE_KEY = '_alerts/active.json';
export const ALERTS_HISTORY_PREFIX = '_alerts/history/';

export interface ActiveAlertsDocument {
  updatedAt: string;
  alerts: AlertEvent[];
}

/**
 * `_alerts/history/<YYYY-MM-DD>/<at as YYYYMMDDTHHMMSSmmmZ>-<state>-<alertId encoded>-<n>.json`.
 * The archive has no append, so each event is its own object; the compact time keeps keys
 * S3-safe (no ':') and makes a day's listing chronological. n (this process's event count) keeps
 * two events of one alert within the same millisecond apart.
 */
export function alertHistoryKey(event: AlertEvent, n: number): string {
  const at = new Date(event.at).toISOString();
  const stamp = at.replace(/[-:]/g, '').replace('.', '');
  return `${ALERTS_HISTORY_PREFIX}${at.slice(0, 10)}/${stamp}-${event.state}-${encodeKeySegment(event.alertId)}-${n}.json`;
}

/** One log line per transition: warn when it fires, info when it clears. */
export class LogSink implements AlertSink {
  readonly name = 'log';

  constructor(private readonly logger: Logger) {}

  async deliver(event: AlertEvent): Promise<void> {
    const fields = { alertId: event.alertId, kind: event.kind, owner: event.owner, severity: event.severity, device: event.device, since: event.since, details: event.details };
    if (event.state === 'firing') this.logger.warn(`alert firing: ${event.message}`, fields);
    else this.logger.info(`alert cleared: ${event.message}`, fields);
  }
}

/**
 * Keeps `_alerts/active.json` current (written whole through put, so readers never see half of
 * it) and keeps every event under `_alerts/history/`. History first: if the active view fails to
 * update, the event is still on record.
 */
export class ArchiveFileSink implements AlertSink {
  readonly name = 'file';
  private written = 0;

  constructor(
    private readonly archive: ArchiveBackend,
    private readonly now: () => Date = () => new Date(),
  ) {}

  async deliver(event: AlertEvent, active: readonly AlertEvent[]): Promise<void> {
    this.written += 1;
    await this.archive.put(alertHistoryKey(event, this.written), JSON.stringify(event, null, 2));
    const document: ActiveAlertsDocument = { updatedAt: this.now().toISOString(), alerts: [...active] };
    await this.archive.put(ALERTS_ACTIVE_KEY, JSON.stringify(document, null, 2));
  }
}

/** Reads the active view written by ArchiveFileSink; an absent or unreadable file is no alerts. */
export async function readActiveAlerts(archive: ArchiveBackend): Promise<AlertEvent[]> {
  const body = await archive.get(ALERTS_ACTIVE_KEY);
  if (!body) return [];
  const document = JSON.parse(body.toString('utf8')) as Partial<ActiveAlertsDocument>;
  if (!Array.isArray(document.alerts)) throw new Error(`${ALERTS_ACTIVE_KEY} has no "alerts" list`);
  return document.alerts.filter((a) => typeof a?.alertId === 'string' && a.state === 'firing');
}

export interface WebhookSinkOptions {
  url: string;
  /** Per attempt. */
  timeoutMs?: number;
  attempts?: number;
  retryBaseMs?: number;
  headers?: Record<string, string>;
}

/** Thrown when a response says retrying cannot help (a 4xx other than 408 and 429). */
class PermanentWebhookError extends Error {}

/**
 * POSTs each event as JSON. A timeout, a network error or a 5xx/408/429 is retried with jittered
 * backoff; when the attempts are used up the delivery fails (the manager counts and logs it).
 */
export class WebhookSink implements AlertSink {
  readonly name = 'webhook';
  readonly metrics = { delivered: 0, failedAttempts: 0, failed: 0 };
  private readonly url: string;
  private readonly timeoutMs: number;
  private readonly attempts: number;
  private readonly retryBaseMs: number;
  private readonly headers: Record<string, string>;

  constructor(options: WebhookSinkOptions) {
    // Checked here so a bad --alert-webhook stops the ingest at start, not at the first alert.
    const url = new URL(options.url);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`alert webhook URL must be http or https, got "${options.url}"`);
    this.url = url.toString();
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.attempts = Math.max(1, Math.floor(options.attempts ?? 4));
    this.retryBaseMs = Math.max(1, options.retryBaseMs ?? 500);
    this.headers = options.headers ?? {};
  }

  async deliver(event: AlertEvent): Promise<void> {
    const backoff = new Backoff(this.retryBaseMs, this.retryBaseMs * 32);
    for (let attempt = 1; ; attempt += 1) {
      try {
        await this.post(event);
        this.metrics.delivered += 1;
        return;
      } catch (error) {
        this.metrics.failedAttempts += 1;
        if (attempt >= this.attempts || error instanceof PermanentWebhookError) {
          this.metrics.failed += 1;
          throw new Error(`webhook ${this.url} failed after ${attempt} attempt(s): ${errorMessage(error)}`);
        }
        await sleep(backoff.nextDelayMs());
      }
    }
  }

  private async post(event: AlertEvent): Promise<void> {
    const response = await fetch(this.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...this.headers },
      body: JSON.stringify(event),
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    // The body is not used, but reading it lets the connection be reused.
    await response.arrayBuffer().catch(() => undefined);
    if (response.ok) return;
    const message = `HTTP ${response.status} ${response.statusText}`.trim();
    if (response.status >= 400 && response.status < 500 && response.status !== 408 && response.status !== 429) throw new PermanentWebhookError(message);
    throw new Error(message);
  }
}

export interface SnsSinkOptions {
  topicArn: string;
  region?: string;
  /** A different endpoint than the region's SNS, e.g. a VPC endpoint, or a local peer in tests. */
  endpoint?: string;
  /** A ready client (credentials, retries and all); otherwise one is built from region and endpoint. */
  client?: SNSClient;
  clientConfig?: SNSClientConfig;
}

/** SNS caps a subject at 100 ASCII characters. */
const MAX_SUBJECT_CHARS = 100;

/**
 * Publishes each event to an SNS topic: the event as JSON in Message, a short Subject for email
 * subscribers, and kind / severity / state / owner as message attributes so subscriptions can
 * filter (SNS subscription filter policies). The SDK's own retry strategy handles throttling.
 */
export class SnsSink implements AlertSink {
  readonly name = 'sns';
  readonly metrics = { published: 0 };
  private readonly client: SNSClient;

  constructor(private readonly options: SnsSinkOptions) {
    if (!/^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_.-]+$/.test(options.topicArn)) {
      throw new Error(`alert SNS topic must be an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>), got "${options.topicArn}"`);
    }
    this.client =
      options.client ??
      new SNSClient({
        // The topic's own region is the right default: SNS only publishes to topics in the client's region.
        region: options.region ?? options.topicArn.split(':')[3],
        ...(options.endpoint ? { endpoint: options.endpoint } : {}),
        ...options.clientConfig,
      });
  }

  async deliver(event: AlertEvent): Promise<void> {
    const subject = `[${event.state.toUpperCase()}] ${event.severity} ${event.kind} ${event.device}${event.stream || event.component ? ` ${event.stream ?? event.component}` : ''}`
      .replace(/[^\x20-\x7E]/g, '?')
      .slice(0, MAX_SUBJECT_CHARS);
    await this.client.send(
      new PublishCommand({
        TopicArn: this.options.topicArn,
        Subject: subject,
        Message: JSON.stringify(event),
        MessageAttributes: {
          kind: { DataType: 'String', StringValue: event.kind },
          severity: { DataType: 'String', StringValue: event.severity },
          state: { DataType: 'String', StringValue: event.state },
          owner: { DataType: 'String', StringValue: event.owner },
        },
      }),
    );
    this.metrics.published += 1;
  }

  destroy(): void {
    this.client.destroy();
  }
}
