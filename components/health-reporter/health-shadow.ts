import type { Logger } from '../shared/logger';
import { describeIpcError } from '../shared/ipc';
import type { HealthMessage } from './reporter';

/**
 * The named shadow "health" as fleet indexing wants it: flat, typed fields that a fleet query
 * can filter on (shadow.name.health.reported.status:unhealthy, ...backlogAgeSec > 300), well
 * under the 8 KiB shadow document limit. Nested objects and free-length lists stay in the health
 * message on dt/<app>/<thing>/health; the shadow keeps what an operator filters by.
 */
export const HEALTH_SHADOW = 'health';

/** The health message's reasons are free text; the shadow keeps the first few, bounded. */
const MAX_REASON_CHARS = 512;

export type HealthShadowState = Record<string, string | number | boolean | null>;

export function healthShadowState(message: HealthMessage): HealthShadowState {
  const state: HealthShadowState = {
    status: message.status,
    reasonCount: message.reasons.length,
    reasons: message.reasons.join('; ').slice(0, MAX_REASON_CHARS),
    updatedAt: message.time,
    loadAvg1m: round(message.system.loadAvg1m),
    cpuBusyPercent: message.system.cpuBusyPercent,
    memFreeBytes: message.system.memFreeBytes,
    diskFreeBytes: message.system.diskFreeBytes,
    clockState: message.system.clockState,
  };
  const buffer = message.components.StreamBuffer?.metrics as { store?: { backlogRecords?: number; streams?: Array<{ oldestBacklogTime: number | null }> } } | null | undefined;
  state.backlogRecords = typeof buffer?.store?.backlogRecords === 'number' ? buffer.store.backlogRecords : null;
  const oldest = (buffer?.store?.streams ?? []).map((s) => s.oldestBacklogTime).filter((t): t is number => typeof t === 'number');
  state.backlogAgeSec = oldest.length > 0 ? Math.max(0, Math.round((Date.parse(message.time) - Math.min(...oldest)) / 1000)) : 0;
  for (const [name, component] of Object.entries(message.components)) {
    // Field names are the component's short name: fleet indexing fields cannot contain dots.
    state[`${lowerFirst(name)}LastSeenSec`] = component.lastSeenSec;
  }
  return state;
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}

function lowerFirst(text: string): string {
  return text.charAt(0).toLowerCase() + text.slice(1);
}

/**
 * Keeps the named shadow current. A failed update (no shadow service, the nucleus busy) is logged
 * and counted and never stops the health message itself; the next publish tries again.
 */
export class HealthShadowWriter {
  readonly metrics = { shadowUpdates: 0, shadowUpdateFailures: 0 };

  constructor(
    private readonly thingName: string,
    private readonly update: (thingName: string, shadowName: string, document: Record<string, unknown>) => Promise<unknown>,
    private readonly logger: Logger,
  ) {}

  async write(message: HealthMessage): Promise<void> {
    try {
      await this.update(this.thingName, HEALTH_SHADOW, { state: { reported: healthShadowState(message) } });
      this.metrics.shadowUpdates += 1;
    } catch (error) {
      this.metrics.shadowUpdateFailures += 1;
      this.logger.warn('health shadow not updated', { shadow: HEALTH_SHADOW, error: describeIpcError(error) });
    }
  }
}
