import type { StatusV1 } from '../components/shared/contracts.generated';
import { parseJson } from '../components/shared/envelope';
import { errorMessage, type Logger } from '../components/shared/logger';
import statusSchema from '../components/shared/schemas/status.v1.schema.json';
import { compileValidator } from '../components/shared/validation';
import type { ArchiveBackend } from './archive';
import { encodeKeySegment } from './keys';

/**
 * The cloud's side of the device status (docs/CONTRACTS.md, "Device status"): what arrives on
 * dt/<app>/<thing>/status is MqttPublisher's retained "online", its "offline/stopped" before a
 * clean stop, and its MQTT 5 last will "offline/connection-lost". This module checks each one,
 * keeps the latest per device (in memory and at device-status/<device>/latest.json, so a restarted
 * ingest and any reader of the archive see the current state), and refuses what does not belong.
 *
 * Ordering: a status names the start of the connection it speaks for (startedAt). One with an
 * older startedAt than the device's latest is stale: a will of an old process delivered after
 * the new process announced itself online (possible when the two used different client ids), or
 * a retained message redelivered out of order. It is counted and logged, never stored over the
 * newer one. Within one startedAt, arrival order wins (online, then the will or the stop).
 *
 * A message that fails is not stored here: accept() returns the reason, prefixed with its
 * category ("status: ...", "mis-addressed: ..."), for the caller's own rejection path (the
 * ingest's reject(), which counts it per category and keeps the payload under rejected/).
 */
export type DeviceStatusMessage = StatusV1;

export const DEVICE_STATUS_PREFIX = 'device-status/';

export function deviceStatusKey(device: string): string {
  return `${DEVICE_STATUS_PREFIX}${encodeKeySegment(device)}/latest.json`;
}

export interface DeviceStatusEntry {
  device: string;
  status: DeviceStatusMessage['status'];
  reason: DeviceStatusMessage['reason'];
  /** When the device went offline, as well as the cloud can tell; null while online. */
  offlineSince: string | null;
  receivedAt: string;
  message: DeviceStatusMessage;
}

export type StatusOutcome =
  | { ok: true; outcome: 'stored' | 'unchanged' | 'stale'; entry: DeviceStatusEntry }
  | { ok: false; reason: string };

const validateStatus = compileValidator<DeviceStatusMessage>(statusSchema);

export interface DeviceStatusBookOptions {
  archive: ArchiveBackend;
  logger: Logger;
  /** The caller's retry policy for archive writes (the ingest's withRetries); one attempt by default. */
  withRetries?: (call: () => Promise<void>) => Promise<void>;
  /**
   * Other ingest instances (a shared-subscription group) write the same keys: the archived latest
   * is read before every decision instead of trusting this process's memory, which another
   * instance may have made old (a will of an old connection would otherwise overwrite the online
   * status a newer connection had another instance write). Status messages are rare: one read each.
   */
  archiveIsShared?: boolean;
}

export class DeviceStatusBook {
  readonly counters = { received: 0, stored: 0, unchanged: 0, stale: 0, invalid: 0, writeFailures: 0 };
  private readonly latestByDevice = new Map<string, DeviceStatusEntry>();
  /** Devices whose archived latest has been read (or found absent) since this process started. */
  private readonly loaded = new Set<string>();

  constructor(private readonly options: DeviceStatusBookOptions) {}

  /** Checks one message that arrived on the status topic of `device` and keeps it if it is the newest. */
  async accept(device: string, payload: Buffer, receivedAt: Date): Promise<StatusOutcome> {
    this.counters.received += 1;
    const json = parseJson(payload);
    if (!json.ok) return this.invalid(`status: ${json.reason}`);
    const checked = validateStatus(json.value);
    if (!checked.ok) return this.invalid(`status: ${checked.reason}`);
    const message = checked.value;
    if (message.device !== device) return this.invalid(`mis-addressed: topic names thing "${device}", status says "${message.device}"`);
    if ((message.status === 'online') !== (message.reason === 'connected')) {
      return this.invalid(`status: "${message.status}" cannot have reason "${message.reason}" (online goes with connected, offline with stopped or connection-lost)`);
    }
    const previous = await this.latest(device);
    const entry = toEntry(message, receivedAt);
    if (previous && Date.parse(message.startedAt) < Date.parse(previous.message.startedAt)) {
      this.counters.stale += 1;
      this.options.logger.info('stale device status ignored', { device, status: message.status, startedAt: message.startedAt, latestStartedAt: previous.message.startedAt });
      return { ok: true, outcome: 'stale', entry: previous };
    }
    if (previous && JSON.stringify(previous.message) === JSON.stringify(message)) {
      // The retained copy again (a new subscription, a reconnect): nothing new to say.
      this.counters.unchanged += 1;
      return { ok: true, outcome: 'unchanged', entry: previous };
    }
    this.latestByDevice.set(device, entry);
    if (!previous || previous.status !== entry.status) {
      this.options.logger.info('device status changed', { device, status: entry.status, reason: entry.reason, offlineSince: entry.offlineSince, previous: previous?.status ?? null });
    }
    try {
      const write = () => this.options.archive.put(deviceStatusKey(device), JSON.stringify(entry));
      await (this.options.withRetries ? this.options.withRetries(write) : write());
      this.counters.stored += 1;
    } catch (error) {
      // Kept in memory all the same: the live view is right, only a restart would forget it.
      this.counters.writeFailures += 1;
      this.options.logger.error('device status not written to the archive', { device, key: deviceStatusKey(device), error: errorMessage(error) });
    }
    return { ok: true, outcome: 'stored', entry };
  }

  /**
   * The device's latest status: from memory, else from the archive (once per device per process;
   * every time when the archive is shared with other instances).
   */
  async latest(device: string): Promise<DeviceStatusEntry | undefined> {
    const known = this.latestByDevice.get(device);
    if (!this.options.archiveIsShared && (known || this.loaded.has(device))) return known;
    this.loaded.add(device);
    try {
      const body = await this.options.archive.get(deviceStatusKey(device));
      if (!body) return known;
      const stored = JSON.parse(body.toString('utf8')) as DeviceStatusEntry;
      const checked = validateStatus(stored.message);
      if (!checked.ok) throw new Error(`archived status breaks status.v1: ${checked.reason}`);
      // This process's own may be newer than the archive's (its write failed): the newer start wins.
      const newest = known && Date.parse(known.message.startedAt) > Date.parse(stored.message.startedAt) ? known : stored;
      this.latestByDevice.set(device, newest);
      return newest;
    } catch (error) {
      // Without it the next message is simply taken as the newest; say so rather than guess.
      this.options.logger.warn('could not read the archived device status; the next status is taken as the latest', { device, error: errorMessage(error) });
      return known;
    }
  }

  /** Every device seen by this process, with its latest status. */
  snapshot(): DeviceStatusEntry[] {
    return [...this.latestByDevice.values()].sort((a, b) => a.device.localeCompare(b.device));
  }

  private invalid(reason: string): StatusOutcome {
    this.counters.invalid += 1;
    return { ok: false, reason };
  }
}

/**
 * offlineSince: a clean stop says when (its time); a will is sent willDelaySec after the broker
 * noticed the loss, so the loss is about that long before the will arrived (later by up to 1.5
 * keep-alives when the link died silently, MQTT 5.0, 3.1.2.10).
 */
function toEntry(message: DeviceStatusMessage, receivedAt: Date): DeviceStatusEntry {
  let offlineSince: string | null = null;
  if (message.reason === 'stopped') offlineSince = message.time;
  else if (message.reason === 'connection-lost') offlineSince = new Date(receivedAt.getTime() - message.willDelaySec * 1000).toISOString();
  return { device: message.device, status: message.status, reason: message.reason, offlineSince, receivedAt: receivedAt.toISOString(), message };
}
