import type { ArchiveBackend } from '../archive';
import { CHECKER_STATUS_KEY, decodeKeySegment, GAPS_PREFIX, HEALTH_PREFIX, parseGapKey, parseInstanceStatusKey, STATUS_KEY, STATUS_PREFIX } from '../keys';
import { DEVICE_STATUS_PREFIX } from '../device-status';
import { countInto } from '../../components/shared/heartbeat-metrics';

/**
 * What the fleet view shows, built only through ArchiveBackend (get / list), so the same code
 * serves a local folder today and S3 later. Nothing here throws on bad data: whatever cannot be
 * read or understood becomes an entry in `problems`, and the rest of the model is still built.
 */

/** Same layout as cloud/fleet-status.ts (fleetStatusKey), which writes it. */
export const FLEET_STATUS_PREFIX = 'fleet-status/';
export const ACTIVE_ALERTS_KEY = '_alerts/active.json';

export type HealthState = 'healthy' | 'degraded' | 'unhealthy';
/** 'unknown': the device is known (e.g. from fleet status) but has no readable health message. */
export type DeviceStatus = HealthState | 'unknown';
/** Liveness judged from the health message: 'stale' when the reporter names the component in a reason. */
export type HeartbeatState = 'alive' | 'stale' | 'missing';

export interface ComponentView {
  /** Short name as the health message uses it (e.g. MqttPublisher). */
  name: string;
  /** Full Greengrass name from fleet status (e.g. com.elevator.MqttPublisher), when known. */
  componentName: string | null;
  /** Lifecycle state from fleet status (RUNNING, BROKEN, ...), null without fleet status. */
  lifecycle: string | null;
  version: string | null;
  heartbeat: HeartbeatState | null;
  /** Seconds between the component's last heartbeat and the health message. */
  lastSeenSec: number | null;
}

export interface DeviceView {
  device: string;
  status: DeviceStatus;
  reasons: string[];
  /** The health message's own time (the device's clock). */
  healthTime: string | null;
  /** When the cloud stored it (the cloud's clock). */
  receivedAt: string | null;
  healthAgeSec: number | null;
  /** No health message for longer than staleHealthSec: the status shown may be out of date. */
  healthStale: boolean;
  backlogRecords: number | null;
  /** Age of the oldest unacknowledged record when the health message was made. */
  backlogAgeSec: number | null;
  clockSkewed: boolean;
  overallDeviceStatus: string | null;
  fleetStatusTime: string | null;
  /** The device's own MQTT 5 connection (device-status/, written from its online status and last will); null under Greengrass IPC. */
  connection: ConnectionView | null;
  components: ComponentView[];
}

export interface ConnectionView {
  status: 'online' | 'offline';
  reason: string;
  offlineSince: string | null;
  receivedAt: string | null;
}

export interface IngestView {
  connected: boolean | null;
  startedAt: string | null;
  updatedAt: string | null;
  ageSec: number | null;
  /** The ingest rewrites its status every second; a much older one means it is down or stuck. */
  stale: boolean;
  recordsArchived: number;
  duplicatesDropped: number;
  rejected: Record<string, number>;
  rejectedTotal: number;
  invalidRecords: Record<string, number>;
  invalidTotal: number;
  clockSkewFlags: number;
  devicesSkewed: string[];
  backfillRequests: number;
  archiveErrors: number;
  epochLoss: number;
  lossReports: number;
}

/** One instance of a shared-subscription group (`--integrity checker`), from `_status/ingest-<id>.json`. */
export interface IngestInstanceView extends IngestView {
  instance: string;
  key: string;
}

/** The integrity checker, from `_status/checker.json`. */
export interface CheckerView {
  updatedAt: string | null;
  ageSec: number | null;
  /** No pass written for staleCheckerSec: the checker is down, stuck, or its schedule stopped. */
  stale: boolean;
  passes: number;
  passErrors: number;
  lastPassAt: string | null;
  streams: number;
  recordsArchived: number;
  openGapRecords: number;
  permanentGapRecords: number;
  epochLoss: number;
  acksSent: number;
  ackErrors: number;
  backfillRequests: number;
  archiveErrors: number;
}

export interface AlertView {
  alertId: string;
  kind: string;
  owner: 'device' | 'connectivity' | 'cloud';
  severity: 'warning' | 'critical';
  state: 'firing' | 'cleared';
  device: string;
  stream: string | null;
  component: string | null;
  message: string;
  since: string | null;
  at: string | null;
}

export interface GapView {
  key: string;
  device: string;
  stream: string;
  epoch: string;
  seqFrom: number;
  seqTo: number;
  records: number;
  reason: string;
  source: string | null;
  receivedAt: string | null;
}

export interface Problem {
  /** The archive key (or prefix) that could not be read or understood. */
  key: string;
  problem: string;
}

export interface FleetModel {
  generatedAt: string;
  devices: DeviceView[];
  /**
   * The ingest's counters: the single ingest's (`_status/ingest.json`), or, where only the
   * instances of a group write status, their sums (stale only when every instance is).
   */
  ingest: IngestView | null;
  /** Where `ingest` comes from: the single ingest's status, the group's sums, or nowhere. */
  ingestSource: 'single' | 'group' | null;
  /** Each instance of a shared-subscription group, by name; empty for a single ingest. */
  ingestInstances: IngestInstanceView[];
  checker: CheckerView | null;
  alerts: AlertView[];
  alertsUpdatedAt: string | null;
  /** The most recent permanent gaps, newest first (at most maxGaps). */
  gaps: GapView[];
  gapCount: number;
  gapRecords: number;
  problems: Problem[];
}

export interface BuildOptions {
  /** Health older than this is flagged stale (default 90 s: three of the reporter's default 30 s periods). */
  staleHealthSec?: number;
  /** Ingest status older than this is flagged stale (default 10 s; it is rewritten every second). */
  staleIngestSec?: number;
  /** Checker status older than this is flagged stale (default 60 s: twelve of its default 5 s passes; raise it for a scheduled checker). */
  staleCheckerSec?: number;
  maxGaps?: number;
  /**
   * Gap objects never change once written, so their bodies are remembered between builds; without
   * it a long run's gaps would all be re-read every second.
   */
  gapCache?: GapCache;
}

export const DEFAULT_STALE_HEALTH_SEC = 90;
export const DEFAULT_STALE_INGEST_SEC = 10;
export const DEFAULT_STALE_CHECKER_SEC = 60;
export const DEFAULT_MAX_GAPS = 20;
/** Caps the gap bodies read in one build, so a huge backlog of gaps is read over several seconds instead of stalling one. */
const MAX_GAP_READS_PER_BUILD = 500;

export class GapCache {
  readonly entries = new Map<string, GapView | Problem>();

  /** Forgets keys no longer listed, so the cache never outgrows the archive. */
  retainOnly(keys: Set<string>): void {
    for (const key of this.entries.keys()) if (!keys.has(key)) this.entries.delete(key);
  }
}

export async function buildFleetModel(archive: ArchiveBackend, now: Date = new Date(), options: BuildOptions = {}): Promise<FleetModel> {
  const problems: Problem[] = [];
  const staleHealthSec = options.staleHealthSec ?? DEFAULT_STALE_HEALTH_SEC;

  const staleIngestSec = options.staleIngestSec ?? DEFAULT_STALE_INGEST_SEC;
  const [healthKeys, fleetKeys, statusKeys, serviceStatusKeys, ingestBody, alertsBody, checkerBody] = await Promise.all([
    listOrReport(archive, HEALTH_PREFIX, problems),
    listOrReport(archive, FLEET_STATUS_PREFIX, problems),
    listOrReport(archive, DEVICE_STATUS_PREFIX, problems),
    listOrReport(archive, STATUS_PREFIX, problems),
    readJson(archive, STATUS_KEY, problems),
    readJson(archive, ACTIVE_ALERTS_KEY, problems),
    readJson(archive, CHECKER_STATUS_KEY, problems),
  ]);
  const ingestInstances = (
    await Promise.all(
      serviceStatusKeys.map(async (key) => {
        const instance = parseInstanceStatusKey(key);
        if (instance === undefined) return undefined;
        const body = await readJson(archive, key, problems);
        const view = body === undefined ? null : toIngestView(body, now, staleIngestSec, problems, key);
        return view ? { ...view, instance, key } : undefined;
      }),
    )
  )
    .filter((view): view is IngestInstanceView => view !== undefined)
    .sort((a, b) => (a.instance < b.instance ? -1 : a.instance > b.instance ? 1 : 0));
  const single = ingestBody === undefined ? null : toIngestView(ingestBody, now, staleIngestSec, problems);
  const ingest = single ?? (ingestInstances.length > 0 ? sumIngestViews(ingestInstances) : null);
  const checker = checkerBody === undefined ? null : toCheckerView(checkerBody, now, options.staleCheckerSec ?? DEFAULT_STALE_CHECKER_SEC, problems);
  const skewed = new Set(ingest?.devicesSkewed ?? []);

  const healthByDevice = new Map<string, string>();
  for (const key of healthKeys) {
    const device = deviceOfLatestKey(key, HEALTH_PREFIX);
    if (device !== undefined) healthByDevice.set(device, key);
  }
  const fleetByDevice = new Map<string, string>();
  for (const key of fleetKeys) {
    const device = deviceOfLatestKey(key, FLEET_STATUS_PREFIX);
    if (device !== undefined) fleetByDevice.set(device, key);
  }
  const statusByDevice = new Map<string, string>();
  for (const key of statusKeys) {
    const device = deviceOfLatestKey(key, DEVICE_STATUS_PREFIX);
    if (device !== undefined) statusByDevice.set(device, key);
  }
  const deviceNames = [...new Set([...healthByDevice.keys(), ...fleetByDevice.keys(), ...statusByDevice.keys()])].sort();
  const devices = await Promise.all(
    deviceNames.map(async (device) => {
      const healthKey = healthByDevice.get(device);
      const fleetKey = fleetByDevice.get(device);
      const statusKey = statusByDevice.get(device);
      const [health, fleet, status] = await Promise.all([
        healthKey ? readJson(archive, healthKey, problems) : undefined,
        fleetKey ? readJson(archive, fleetKey, problems) : undefined,
        statusKey ? readJson(archive, statusKey, problems) : undefined,
      ]);
      const view = toDeviceView(device, healthKey, health, fleetKey, fleet, now, staleHealthSec, skewed.has(device), problems);
      if (statusKey && status !== undefined) view.connection = toConnectionView(statusKey, status, problems);
      return view;
    }),
  );

  const alertsView = alertsBody === undefined ? { alerts: [], updatedAt: null } : toAlerts(alertsBody, problems);
  const gaps = await recentGaps(archive, options.maxGaps ?? DEFAULT_MAX_GAPS, options.gapCache ?? new GapCache(), problems);

  return {
    generatedAt: now.toISOString(),
    devices,
    ingest,
    ingestSource: single ? 'single' : ingest ? 'group' : null,
    ingestInstances,
    checker,
    alerts: alertsView.alerts,
    alertsUpdatedAt: alertsView.updatedAt,
    ...gaps,
    problems,
  };
}

/** device-status/<device>/latest.json as cloud/device-status.ts writes it. */
function toConnectionView(key: string, body: unknown, problems: Problem[]): ConnectionView | null {
  if (!isObject(body) || (body.status !== 'online' && body.status !== 'offline') || typeof body.reason !== 'string') {
    problems.push({ key, problem: 'device status: expected {status: online|offline, reason, offlineSince, receivedAt}' });
    return null;
  }
  return {
    status: body.status,
    reason: body.reason,
    offlineSince: typeof body.offlineSince === 'string' ? body.offlineSince : null,
    receivedAt: typeof body.receivedAt === 'string' ? body.receivedAt : null,
  };
}

async function listOrReport(archive: ArchiveBackend, prefix: string, problems: Problem[]): Promise<string[]> {
  try {
    return await archive.list(prefix);
  } catch (error) {
    problems.push({ key: prefix, problem: `archive list failed: ${describe(error)}` });
    return [];
  }
}

/** undefined when the object is absent (optional files) or unreadable (then a problem is noted). */
async function readJson(archive: ArchiveBackend, key: string, problems: Problem[]): Promise<unknown> {
  let body: Buffer | undefined;
  try {
    body = await archive.get(key);
  } catch (error) {
    problems.push({ key, problem: `archive read failed: ${describe(error)}` });
    return undefined;
  }
  if (body === undefined) return undefined;
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (error) {
    problems.push({ key, problem: `not JSON: ${describe(error)}` });
    return undefined;
  }
}

/** `<prefix><device>/latest.json` → device; other keys under the prefix are not ours to show. */
function deviceOfLatestKey(key: string, prefix: string): string | undefined {
  const parts = key.slice(prefix.length).split('/');
  if (parts.length !== 2 || parts[1] !== 'latest.json') return undefined;
  return decodeKeySegment(parts[0]) ?? parts[0];
}

function toDeviceView(
  device: string,
  healthKey: string | undefined,
  stored: unknown,
  fleetKey: string | undefined,
  fleetBody: unknown,
  now: Date,
  staleHealthSec: number,
  clockSkewed: boolean,
  problems: Problem[],
): DeviceView {
  const view: DeviceView = {
    device,
    status: 'unknown',
    reasons: [],
    healthTime: null,
    receivedAt: null,
    healthAgeSec: null,
    healthStale: false,
    backlogRecords: null,
    backlogAgeSec: null,
    clockSkewed,
    overallDeviceStatus: null,
    fleetStatusTime: null,
    connection: null,
    components: [],
  };
  const health = healthKey && stored !== undefined ? parseStoredHealth(healthKey, stored, problems) : undefined;
  if (health) {
    view.status = health.status;
    view.reasons = health.reasons;
    view.healthTime = health.time;
    view.receivedAt = health.receivedAt;
    const receivedMs = health.receivedAt ? Date.parse(health.receivedAt) : NaN;
    if (Number.isFinite(receivedMs)) {
      view.healthAgeSec = Math.max(0, Math.round((now.getTime() - receivedMs) / 1000));
      view.healthStale = view.healthAgeSec > staleHealthSec;
    }
    const backlog = backlogOf(health.components, health.time);
    view.backlogRecords = backlog.records;
    view.backlogAgeSec = backlog.ageSec;
    for (const [name, component] of Object.entries(health.components)) {
      // The reporter names a late component at the start of a reason; that is its own verdict, so reuse it.
      const late = health.reasons.some((reason) => reason.startsWith(`${name}:`));
      view.components.push({
        name,
        componentName: null,
        lifecycle: null,
        version: null,
        heartbeat: component.lastSeenSec === null ? 'missing' : late ? 'stale' : 'alive',
        lastSeenSec: component.lastSeenSec,
      });
    }
  }
  const fleet = fleetKey && fleetBody !== undefined ? parseFleetStatus(fleetKey, fleetBody, problems) : undefined;
  if (fleet) {
    view.overallDeviceStatus = fleet.overallDeviceStatus;
    view.fleetStatusTime = fleet.time;
    for (const component of fleet.components) {
      const short = component.componentName.slice(component.componentName.lastIndexOf('.') + 1);
      let target = view.components.find((c) => c.name === short);
      if (!target) {
        target = { name: short, componentName: null, lifecycle: null, version: null, heartbeat: null, lastSeenSec: null };
        view.components.push(target);
      }
      target.componentName = component.componentName;
      target.lifecycle = component.status;
      target.version = component.version;
    }
  }
  view.components.sort((a, b) => a.name.localeCompare(b.name));
  return view;
}

interface ParsedHealth {
  status: HealthState;
  reasons: string[];
  time: string | null;
  receivedAt: string | null;
  components: Record<string, { lastSeenSec: number | null; metrics: Record<string, unknown> | null }>;
}

function parseStoredHealth(key: string, stored: unknown, problems: Problem[]): ParsedHealth | undefined {
  const fail = (why: string): undefined => {
    problems.push({ key, problem: `health: ${why}` });
    return undefined;
  };
  if (!isObject(stored) || !isObject(stored.health)) return fail('expected {device, receivedAt, health}');
  const health = stored.health;
  if (health.status !== 'healthy' && health.status !== 'degraded' && health.status !== 'unhealthy') return fail(`unknown status ${JSON.stringify(health.status)}`);
  if (!Array.isArray(health.reasons) || !health.reasons.every((r) => typeof r === 'string')) return fail('reasons is not a list of strings');
  const components: ParsedHealth['components'] = {};
  if (isObject(health.components)) {
    for (const [name, value] of Object.entries(health.components)) {
      if (!isObject(value)) continue;
      components[name] = {
        lastSeenSec: typeof value.lastSeenSec === 'number' ? value.lastSeenSec : null,
        metrics: isObject(value.metrics) ? value.metrics : null,
      };
    }
  }
  return {
    status: health.status,
    reasons: health.reasons as string[],
    time: typeof health.time === 'string' ? health.time : null,
    receivedAt: typeof stored.receivedAt === 'string' ? stored.receivedAt : null,
    components,
  };
}

/** From StreamBuffer's heartbeat as copied into the health message (metrics.store: StoreStats). */
function backlogOf(components: ParsedHealth['components'], healthTime: string | null): { records: number | null; ageSec: number | null } {
  const store = components.StreamBuffer?.metrics?.store;
  if (!isObject(store)) return { records: null, ageSec: null };
  const records = typeof store.backlogRecords === 'number' ? store.backlogRecords : null;
  const streams = Array.isArray(store.streams) ? store.streams : [];
  const oldest = streams
    .map((s) => (isObject(s) && typeof s.oldestBacklogTime === 'number' ? s.oldestBacklogTime : null))
    .filter((t): t is number => t !== null);
  const at = healthTime ? Date.parse(healthTime) : NaN;
  // Both times are the device's clock, so their difference is right even when that clock is off.
  let ageSec: number | null = null;
  if (oldest.length > 0 && Number.isFinite(at)) ageSec = Math.max(0, Math.round((at - Math.min(...oldest)) / 1000));
  else if (oldest.length === 0 && records === 0) ageSec = 0;
  return { records, ageSec };
}

interface ParsedFleetStatus {
  overallDeviceStatus: string | null;
  time: string | null;
  components: Array<{ componentName: string; status: string; version: string | null }>;
}

/**
 * Two forms are read. The ingest's (cloud/fleet-status.ts): `{device, receivedAt, message,
 * components: {<componentName>: {status, version, reportedAt}}}`, where `components` merges PARTIAL
 * messages into the last COMPLETE one, so it is the state of every component, not only of those the
 * last message named. And the bare nucleus payload `{thing, overallDeviceStatus, timestamp,
 * components: [{componentName, version, status}]}`, as a backend that stores messages as received would.
 */
function parseFleetStatus(key: string, body: unknown, problems: Problem[]): ParsedFleetStatus | undefined {
  const fail = (): undefined => {
    problems.push({ key, problem: 'fleet status: expected {device, receivedAt, message, components} or a nucleus fleet status message' });
    return undefined;
  };
  if (!isObject(body)) return fail();
  const message = isObject(body.message) ? body.message : body;
  const components: ParsedFleetStatus['components'] = [];
  if (isObject(body.components)) {
    for (const [componentName, state] of Object.entries(body.components)) {
      if (!isObject(state) || typeof state.status !== 'string') {
        problems.push({ key, problem: `fleet status: component ${componentName} has no status` });
        continue;
      }
      components.push({ componentName, status: state.status, version: typeof state.version === 'string' ? state.version : null });
    }
  } else if (Array.isArray(message.components)) {
    for (const entry of message.components) {
      if (!isObject(entry) || typeof entry.componentName !== 'string' || typeof entry.status !== 'string') {
        problems.push({ key, problem: `fleet status: component entry without componentName and status: ${JSON.stringify(entry).slice(0, 200)}` });
        continue;
      }
      components.push({ componentName: entry.componentName, status: entry.status, version: typeof entry.version === 'string' ? entry.version : null });
    }
  } else {
    return fail();
  }
  const timestamp = message.timestamp;
  return {
    overallDeviceStatus: typeof message.overallDeviceStatus === 'string' ? message.overallDeviceStatus : null,
    // The nucleus sends epoch milliseconds (the device's clock); fall back to when the cloud stored it.
    time: typeof timestamp === 'number' ? new Date(timestamp).toISOString() : typeof body.receivedAt === 'string' ? body.receivedAt : null,
    components,
  };
}

function toIngestView(body: unknown, now: Date, staleIngestSec: number, problems: Problem[], key = STATUS_KEY): IngestView | null {
  if (!isObject(body)) {
    problems.push({ key, problem: 'ingest status is not an object' });
    return null;
  }
  const count = (name: string): number => (typeof body[name] === 'number' ? (body[name] as number) : 0);
  const counts = (name: string): Record<string, number> =>
    isObject(body[name]) ? Object.fromEntries(Object.entries(body[name] as Record<string, unknown>).filter((e): e is [string, number] => typeof e[1] === 'number')) : {};
  if (typeof body.recordsArchived !== 'number') problems.push({ key, problem: 'ingest status has no recordsArchived' });
  const { updatedAt, ageSec } = ageOf(body, now);
  const rejected = counts('rejected');
  const invalidRecords = counts('invalidRecords');
  return {
    connected: typeof body.connected === 'boolean' ? body.connected : null,
    startedAt: typeof body.startedAt === 'string' ? body.startedAt : null,
    updatedAt,
    ageSec,
    stale: ageSec === null || ageSec > staleIngestSec,
    recordsArchived: count('recordsArchived'),
    duplicatesDropped: count('duplicatesDropped'),
    rejected,
    rejectedTotal: sumOf(Object.values(rejected)),
    invalidRecords,
    invalidTotal: sumOf(Object.values(invalidRecords)),
    clockSkewFlags: count('clockSkewFlags'),
    devicesSkewed: Array.isArray(body.devicesSkewed) ? body.devicesSkewed.filter((d): d is string => typeof d === 'string') : [],
    backfillRequests: count('backfillRequests'),
    archiveErrors: count('archiveErrors'),
    epochLoss: count('epochLoss'),
    lossReports: count('lossReports'),
  };
}

function ageOf(body: Record<string, unknown>, now: Date): { updatedAt: string | null; ageSec: number | null } {
  const updatedAt = typeof body.updatedAt === 'string' ? body.updatedAt : null;
  const updatedMs = updatedAt ? Date.parse(updatedAt) : NaN;
  return { updatedAt, ageSec: Number.isFinite(updatedMs) ? Math.max(0, Math.round((now.getTime() - updatedMs) / 1000)) : null };
}

/**
 * The group's counters as one ingest: sums, the newest update, stale only when every instance is
 * (each instance's own state is in ingestInstances), connected when every live instance is.
 */
function sumIngestViews(views: IngestInstanceView[]): IngestView {
  const total = (pick: (v: IngestView) => number): number => sumOf(views.map(pick));
  const merged = (pick: (v: IngestView) => Record<string, number>): Record<string, number> => {
    const out: Record<string, number> = {};
    for (const view of views) for (const [name, n] of Object.entries(pick(view))) countInto(out, name, n);
    return out;
  };
  const newest = [...views].sort((a, b) => (b.updatedAt ?? '').localeCompare(a.updatedAt ?? ''))[0];
  const live = views.filter((v) => !v.stale);
  return {
    connected: live.length === 0 ? null : live.every((v) => v.connected !== false),
    // A group has no single start; the rate code reads a changed startedAt as a restart.
    startedAt: views.map((v) => `${v.instance}@${v.startedAt ?? ''}`).sort().join(' '),
    updatedAt: newest.updatedAt,
    ageSec: newest.ageSec,
    stale: live.length === 0,
    recordsArchived: total((v) => v.recordsArchived),
    duplicatesDropped: total((v) => v.duplicatesDropped),
    rejected: merged((v) => v.rejected),
    rejectedTotal: total((v) => v.rejectedTotal),
    invalidRecords: merged((v) => v.invalidRecords),
    invalidTotal: total((v) => v.invalidTotal),
    clockSkewFlags: total((v) => v.clockSkewFlags),
    devicesSkewed: [...new Set(views.flatMap((v) => v.devicesSkewed))].sort(),
    backfillRequests: total((v) => v.backfillRequests),
    archiveErrors: total((v) => v.archiveErrors),
    epochLoss: total((v) => v.epochLoss),
    lossReports: total((v) => v.lossReports),
  };
}

function toCheckerView(body: unknown, now: Date, staleCheckerSec: number, problems: Problem[]): CheckerView | null {
  if (!isObject(body)) {
    problems.push({ key: CHECKER_STATUS_KEY, problem: 'checker status is not an object' });
    return null;
  }
  const count = (name: string): number => (typeof body[name] === 'number' ? (body[name] as number) : 0);
  if (typeof body.passes !== 'number') problems.push({ key: CHECKER_STATUS_KEY, problem: 'checker status has no passes' });
  const { updatedAt, ageSec } = ageOf(body, now);
  const permanent = isObject(body.permanentGapRecords) ? Object.values(body.permanentGapRecords).filter((n): n is number => typeof n === 'number') : [];
  return {
    updatedAt,
    ageSec,
    stale: ageSec === null || ageSec > staleCheckerSec,
    passes: count('passes'),
    passErrors: count('passErrors'),
    lastPassAt: typeof body.lastPassAt === 'string' ? body.lastPassAt : null,
    streams: count('streams'),
    recordsArchived: count('recordsArchived'),
    openGapRecords: count('openGapRecords'),
    permanentGapRecords: sumOf(permanent),
    epochLoss: count('epochLoss'),
    acksSent: count('acksSent'),
    ackErrors: count('ackErrors'),
    backfillRequests: count('backfillRequests'),
    archiveErrors: count('archiveErrors'),
  };
}

const OWNERS = new Set(['device', 'connectivity', 'cloud']);
const SEVERITIES = new Set(['warning', 'critical']);
const ALERT_STATES = new Set(['firing', 'cleared']);

function toAlerts(body: unknown, problems: Problem[]): { alerts: AlertView[]; updatedAt: string | null } {
  if (!isObject(body) || !Array.isArray(body.alerts)) {
    problems.push({ key: ACTIVE_ALERTS_KEY, problem: 'expected {updatedAt, alerts: [...]}' });
    return { alerts: [], updatedAt: null };
  }
  const alerts: AlertView[] = [];
  body.alerts.forEach((entry, index) => {
    const bad = (why: string): void => void problems.push({ key: ACTIVE_ALERTS_KEY, problem: `alert #${index}: ${why}` });
    if (!isObject(entry)) return bad('not an object');
    for (const field of ['alertId', 'kind', 'device', 'message'] as const) {
      if (typeof entry[field] !== 'string') return bad(`${field} is not a string`);
    }
    if (!OWNERS.has(entry.owner as string)) return bad(`owner ${JSON.stringify(entry.owner)} is not device, connectivity or cloud`);
    if (!SEVERITIES.has(entry.severity as string)) return bad(`severity ${JSON.stringify(entry.severity)} is not warning or critical`);
    if (!ALERT_STATES.has(entry.state as string)) return bad(`state ${JSON.stringify(entry.state)} is not firing or cleared`);
    alerts.push({
      alertId: entry.alertId as string,
      kind: entry.kind as string,
      owner: entry.owner as AlertView['owner'],
      severity: entry.severity as AlertView['severity'],
      state: entry.state as AlertView['state'],
      device: entry.device as string,
      stream: typeof entry.stream === 'string' ? entry.stream : null,
      component: typeof entry.component === 'string' ? entry.component : null,
      message: entry.message as string,
      since: typeof entry.since === 'string' ? entry.since : null,
      at: typeof entry.at === 'string' ? entry.at : null,
    });
  });
  // What needs attention first: firing before cleared, critical before warning, newest first.
  const rank = (a: AlertView): number => (a.state === 'firing' ? 0 : 2) + (a.severity === 'critical' ? 0 : 1);
  alerts.sort((a, b) => rank(a) - rank(b) || (b.at ?? '').localeCompare(a.at ?? ''));
  return { alerts, updatedAt: typeof body.updatedAt === 'string' ? body.updatedAt : null };
}

async function recentGaps(
  archive: ArchiveBackend,
  maxGaps: number,
  cache: GapCache,
  problems: Problem[],
): Promise<{ gaps: GapView[]; gapCount: number; gapRecords: number }> {
  const keys = await listOrReport(archive, GAPS_PREFIX, problems);
  const listed = new Set(keys);
  cache.retainOnly(listed);
  let reads = 0;
  const views: GapView[] = [];
  for (const key of keys) {
    const parsed = parseGapKey(key);
    if (!parsed) {
      problems.push({ key, problem: 'not a gap key (gaps/<device>/<stream>/<epoch>/<from>-<to>.json)' });
      continue;
    }
    let entry = cache.entries.get(key);
    if (entry === undefined && reads < MAX_GAP_READS_PER_BUILD) {
      reads += 1;
      entry = await readGap(archive, key, parsed);
      // A failed read is not cached: the next build tries again.
      if (!('problem' in entry && entry.problem.startsWith('archive read failed'))) cache.entries.set(key, entry);
    }
    if (entry && 'problem' in entry) {
      problems.push(entry);
      continue;
    }
    // Not read yet (over this build's budget): shown from its key alone.
    views.push(
      entry ?? { key, ...parsed, records: parsed.seqTo - parsed.seqFrom + 1, reason: 'unknown (not read yet)', source: null, receivedAt: null },
    );
  }
  views.sort((a, b) => (b.receivedAt ?? '').localeCompare(a.receivedAt ?? '') || a.key.localeCompare(b.key));
  return { gaps: views.slice(0, maxGaps), gapCount: views.length, gapRecords: sumOf(views.map((g) => g.records)) };
}

async function readGap(archive: ArchiveBackend, key: string, parsed: NonNullable<ReturnType<typeof parseGapKey>>): Promise<GapView | Problem> {
  const local: Problem[] = [];
  const body = await readJson(archive, key, local);
  if (local.length > 0) return local[0];
  if (!isObject(body)) return { key, problem: 'gap object is missing or not an object' };
  return {
    key,
    ...parsed,
    records: parsed.seqTo - parsed.seqFrom + 1,
    reason: typeof body.reason === 'string' ? body.reason : 'unknown',
    source: typeof body.source === 'string' ? body.source : null,
    receivedAt: typeof body.receivedAt === 'string' ? body.receivedAt : null,
  };
}

// ---------------------------------------------------------------------------------------------
// Time series: backlog and throughput over the last minutes, kept in memory only.

export interface SeriesPoint {
  /** Sample time, epoch ms (the view server's clock). */
  t: number;
  /** Sum of every device's backlog as its last health message reported it. */
  backlogRecords: number | null;
  /** Oldest backlog age over the fleet, seconds. */
  backlogAgeSec: number | null;
  /** Records archived per second, from the ingest's own counter and timestamps. */
  archivedPerSec: number | null;
  recordsArchived: number | null;
}

/** Keeps the points of the last windowMs, and never more than maxPoints. */
export class TimeSeries<P extends { t: number }> {
  private readonly items: P[] = [];

  constructor(
    readonly windowMs: number,
    readonly maxPoints = 10_000,
  ) {}

  add(point: P): void {
    this.items.push(point);
    const oldest = point.t - this.windowMs;
    let drop = 0;
    while (drop < this.items.length && this.items[drop].t < oldest) drop += 1;
    drop = Math.max(drop, this.items.length - this.maxPoints);
    if (drop > 0) this.items.splice(0, drop);
  }

  points(): P[] {
    return [...this.items];
  }

  get length(): number {
    return this.items.length;
  }
}

/**
 * Turns successive models into series points. Throughput is the change of the ingest's
 * recordsArchived divided by the change of its own updatedAt: sampling on our clock alone would
 * alias against the ingest's once-a-second rewrite and show 0, 2x, 0, 2x.
 */
export class FleetSampler {
  readonly series: TimeSeries<SeriesPoint>;
  private previous?: { startedAt: string | null; updatedMs: number; recordsArchived: number };
  private lastRate: number | null = null;

  constructor(windowMs: number) {
    this.series = new TimeSeries<SeriesPoint>(windowMs);
  }

  sample(model: FleetModel, now: number): SeriesPoint {
    const backlogs = model.devices.map((d) => d.backlogRecords).filter((b): b is number => b !== null);
    const ages = model.devices.map((d) => d.backlogAgeSec).filter((a): a is number => a !== null);
    const point: SeriesPoint = {
      t: now,
      backlogRecords: backlogs.length > 0 ? sumOf(backlogs) : null,
      backlogAgeSec: ages.length > 0 ? Math.max(...ages) : null,
      archivedPerSec: this.rate(model.ingest),
      recordsArchived: model.ingest?.recordsArchived ?? null,
    };
    this.series.add(point);
    return point;
  }

  private rate(ingest: IngestView | null): number | null {
    const updatedMs = ingest?.updatedAt ? Date.parse(ingest.updatedAt) : NaN;
    if (!ingest || ingest.stale || !Number.isFinite(updatedMs)) {
      this.previous = undefined;
      this.lastRate = null;
      return null;
    }
    const previous = this.previous;
    if (previous && previous.startedAt === ingest.startedAt && updatedMs === previous.updatedMs) return this.lastRate;
    this.previous = { startedAt: ingest.startedAt, updatedMs, recordsArchived: ingest.recordsArchived };
    // A restarted ingest counts from 0 again: no rate across the restart.
    if (!previous || previous.startedAt !== ingest.startedAt || ingest.recordsArchived < previous.recordsArchived || updatedMs <= previous.updatedMs) {
      this.lastRate = null;
      return null;
    }
    this.lastRate = Math.round(((ingest.recordsArchived - previous.recordsArchived) / ((updatedMs - previous.updatedMs) / 1000)) * 10) / 10;
    return this.lastRate;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function sumOf(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
