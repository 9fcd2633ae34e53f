import { errorMessage, type Logger } from '../components/shared/logger';

/**
 * Alerts the cloud raises about devices, their links and itself. Each condition has a stable id;
 * the manager emits one `firing` event when it starts and one `cleared` event when it ends, never
 * a repeat in between, and hands every event to the sinks (alert-sinks.ts) without waiting for them.
 */
export type AlertKind = 'device-stale' | 'backlog-growing' | 'gap-open' | 'gap-permanent' | 'clock-skew' | 'component-broken' | 'archive-errors';
/** The team that acts first; docs/OPERATIONS.md says why each kind belongs where it does. */
export type AlertOwner = 'device' | 'connectivity' | 'cloud';
export type AlertSeverity = 'warning' | 'critical';
export type AlertState = 'firing' | 'cleared';

export interface AlertEvent {
  /** `<kind>:<device>[:<stream or component>]`: the same condition always has the same id. */
  alertId: string;
  kind: AlertKind;
  owner: AlertOwner;
  severity: AlertSeverity;
  state: AlertState;
  /** The thing name, or CLOUD_DEVICE for an alert about the cloud ingest itself. */
  device: string;
  stream?: string;
  component?: string;
  /** A sentence a person can act on. */
  message: string;
  /** ISO time the alert started firing; a cleared event repeats it. */
  since: string;
  /** ISO time of this event. */
  at: string;
  details: Record<string, unknown>;
}

/** Not a valid IoT thing name ([a-zA-Z0-9:_-]), so it can never be mistaken for a device. */
export const CLOUD_DEVICE = '*';

export const ALERT_KINDS: Readonly<Record<AlertKind, { owner: AlertOwner; severity: AlertSeverity }>> = {
  'device-stale': { owner: 'connectivity', severity: 'critical' },
  'backlog-growing': { owner: 'connectivity', severity: 'warning' },
  'gap-open': { owner: 'connectivity', severity: 'warning' },
  'gap-permanent': { owner: 'device', severity: 'critical' },
  'clock-skew': { owner: 'device', severity: 'warning' },
  'component-broken': { owner: 'device', severity: 'critical' },
  'archive-errors': { owner: 'cloud', severity: 'critical' },
};

/** What a detector knows about a condition; the manager adds ids, owner, severity and times. */
export interface AlertCondition {
  kind: AlertKind;
  device: string;
  stream?: string;
  component?: string;
  message: string;
  details?: Record<string, unknown>;
}

export function alertId(kind: AlertKind, device: string, subject?: string): string {
  return subject === undefined ? `${kind}:${device}` : `${kind}:${device}:${subject}`;
}

/** Where events go: a log, a file, a webhook, a topic. A sink may throw; the manager counts it. */
export interface AlertSink {
  readonly name: string;
  /** `active` is every alert firing after this event, for sinks that keep a current view. */
  deliver(event: AlertEvent, active: readonly AlertEvent[]): Promise<void>;
}

export interface AlertStats {
  alertsFired: number;
  alertsCleared: number;
  alertsActive: number;
  /** Deliveries a sink gave up on, per sink name. The ingest never waits for or stops on them. */
  alertSinkFailures: Record<string, number>;
}

export interface AlertManagerOptions {
  sinks: AlertSink[];
  logger: Logger;
  now: () => Date;
}

export class AlertManager {
  private readonly sinks: AlertSink[];
  private readonly logger: Logger;
  private readonly now: () => Date;
  private readonly activeAlerts = new Map<string, { event: AlertEvent; touchedAtMs: number }>();
  /** One delivery chain per sink: a sink sees events in order, and a slow sink delays only itself. */
  private readonly chains = new Map<string, Promise<void>>();
  private readonly sinkFailures = new Map<string, number>();
  private fired = 0;
  private cleared = 0;

  constructor(options: AlertManagerOptions) {
    this.sinks = options.sinks;
    this.logger = options.logger;
    this.now = options.now;
  }

  /**
   * Takes back alerts that were firing before a restart, without emitting them again, so that
   * their clearing is still announced. Ids already active are left alone.
   */
  restore(events: readonly AlertEvent[]): void {
    for (const event of events) {
      if (event.state !== 'firing' || this.activeAlerts.has(event.alertId)) continue;
      this.activeAlerts.set(event.alertId, { event, touchedAtMs: Date.parse(event.at) || this.now().getTime() });
    }
  }

  /** Emits a firing event unless the alert is already firing. True if this call started it. */
  fire(condition: AlertCondition): boolean {
    const id = alertId(condition.kind, condition.device, condition.stream ?? condition.component);
    const nowMs = this.now().getTime();
    const current = this.activeAlerts.get(id);
    if (current) {
      current.touchedAtMs = nowMs;
      return false;
    }
    const at = new Date(nowMs).toISOString();
    const { owner, severity } = ALERT_KINDS[condition.kind];
    const event: AlertEvent = {
      alertId: id,
      kind: condition.kind,
      owner,
      severity,
      state: 'firing',
      device: condition.device,
      ...(condition.stream !== undefined ? { stream: condition.stream } : {}),
      ...(condition.component !== undefined ? { component: condition.component } : {}),
      message: condition.message,
      since: at,
      at,
      details: condition.details ?? {},
    };
    this.activeAlerts.set(id, { event, touchedAtMs: nowMs });
    this.fired += 1;
    this.emit(event);
    return true;
  }

  /** Emits a cleared event if the alert is firing. True if this call ended it. */
  clear(id: string, message: string, details: Record<string, unknown> = {}): boolean {
    const current = this.activeAlerts.get(id);
    if (!current) return false;
    this.activeAlerts.delete(id);
    this.cleared += 1;
    this.emit({ ...current.event, state: 'cleared', message, at: this.now().toISOString(), details: { ...current.event.details, ...details } });
    return true;
  }

  isActive(id: string): boolean {
    return this.activeAlerts.has(id);
  }

  /** The last time fire() was called for an active alert (its start, or a later repeat of the condition). */
  touchedAt(id: string): number | undefined {
    return this.activeAlerts.get(id)?.touchedAtMs;
  }

  /** Every firing alert, oldest first. */
  active(): AlertEvent[] {
    return [...this.activeAlerts.values()].map((a) => a.event).sort((a, b) => a.since.localeCompare(b.since) || a.alertId.localeCompare(b.alertId));
  }

  activeOfKind(kind: AlertKind): AlertEvent[] {
    return this.active().filter((event) => event.kind === kind);
  }

  stats(): AlertStats {
    return {
      alertsFired: this.fired,
      alertsCleared: this.cleared,
      alertsActive: this.activeAlerts.size,
      alertSinkFailures: Object.fromEntries(this.sinkFailures),
    };
  }

  /** Resolves once every event emitted so far has been delivered or given up on by every sink. */
  async flush(): Promise<void> {
    while (true) {
      const pending = [...this.chains.values()];
      await Promise.all(pending);
      if ([...this.chains.values()].every((chain, i) => chain === pending[i])) return;
    }
  }

  private emit(event: AlertEvent): void {
    const active = this.active();
    for (const sink of this.sinks) {
      const previous = this.chains.get(sink.name) ?? Promise.resolve();
      const next = previous.then(async () => {
        try {
          await sink.deliver(event, active);
        } catch (error) {
          this.sinkFailures.set(sink.name, (this.sinkFailures.get(sink.name) ?? 0) + 1);
          this.logger.warn('alert sink failed; the alert stays active and later events are still delivered', {
            sink: sink.name,
            alertId: event.alertId,
            state: event.state,
            error: errorMessage(error),
          });
        }
      });
      this.chains.set(sink.name, next);
    }
  }
}

/**
 * The cloud's own alert for an archive write given up on; it stays firing until a write succeeds
 * again (the writer clears alertId('archive-errors', CLOUD_DEVICE) then). `failing` says who cannot write.
 */
export function fireArchiveError(alerts: AlertManager, failing: string, what: string, error: unknown, consequence = ''): void {
  alerts.fire({
    kind: 'archive-errors',
    device: CLOUD_DEVICE,
    message: `${failing} (${what}): check the archive's storage (space, permissions, S3 access)${consequence}.`,
    details: { firstError: error ?? null },
  });
}
