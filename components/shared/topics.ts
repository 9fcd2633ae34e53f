/**
 * Topic layout from the AWS whitepaper "Designing MQTT Topics for AWS IoT Core":
 * telemetry on dt/<app>/<thing>/<stream>, commands to a device on cmd/<app>/<thing>/<kind>.
 * IoT Core limits a topic to 256 bytes and 7 slashes; these stay at 3.
 */
export const APP = 'elevator';

export const MAX_TOPIC_BYTES = 256;

export function dataTopic(thing: string, stream: string, app = APP): string {
  return checkedTopic(`dt/${app}/${thing}/${stream}`);
}

export function commandTopic(thing: string, kind: 'ack' | 'backfill', app = APP): string {
  return checkedTopic(`cmd/${app}/${thing}/${kind}`);
}

/** Reserved names under dt/<app>/<thing>/ that are reports, not data streams. */
export const HEALTH_STREAM = 'health';
export const LOSS_STREAM = 'loss';
export const EPOCH_STREAM = 'epoch';
/** Device status (online/offline): MqttPublisher's retained announcements and its MQTT 5 last will. */
export const STATUS_STREAM = 'status';
export const RESERVED_STREAMS: readonly string[] = [HEALTH_STREAM, LOSS_STREAM, EPOCH_STREAM, STATUS_STREAM];

export function healthTopic(thing: string, app = APP): string {
  return dataTopic(thing, HEALTH_STREAM, app);
}

export function lossTopic(thing: string, app = APP): string {
  return dataTopic(thing, LOSS_STREAM, app);
}

export function epochTopic(thing: string, app = APP): string {
  return dataTopic(thing, EPOCH_STREAM, app);
}

export function statusTopic(thing: string, app = APP): string {
  return dataTopic(thing, STATUS_STREAM, app);
}

/**
 * AWS IoT Device Shadow MQTT topics: $aws/things/<thing>/shadow/name/<shadow>/<operation> for a
 * named shadow, $aws/things/<thing>/shadow/<operation> for the classic one (shadowName "").
 * Reserved $aws topics do not count against the 7-slash limit, but the 256-byte one holds.
 */
export function shadowTopic(thing: string, shadowName: string, operation: 'update' | 'update/accepted' | 'update/rejected'): string {
  const base = shadowName === '' ? `$aws/things/${thing}/shadow` : `$aws/things/${thing}/shadow/name/${shadowName}`;
  return checkedTopic(`${base}/${operation}`);
}

/** Local (Greengrass pub/sub) topic on which each component publishes its heartbeat. */
export function heartbeatTopic(component: string, app = APP): string {
  return `${app}/heartbeat/${component}`;
}

export function heartbeatWildcard(app = APP): string {
  return `${app}/heartbeat/+`;
}

/** Splits dt/<app>/<thing>/<stream>; returns undefined for anything else. */
export function parseDataTopic(topic: string): { app: string; thing: string; stream: string } | undefined {
  const parts = topic.split('/');
  if (parts.length !== 4 || parts[0] !== 'dt' || parts.some((p) => p.length === 0)) return undefined;
  return { app: parts[1], thing: parts[2], stream: parts[3] };
}

function checkedTopic(topic: string): string {
  const bytes = Buffer.byteLength(topic);
  if (bytes > MAX_TOPIC_BYTES) {
    throw new RangeError(`topic "${topic}" is ${bytes} bytes; AWS IoT Core allows at most ${MAX_TOPIC_BYTES}`);
  }
  return topic;
}
