import type { StatusV1 } from '../shared/contracts.generated';
import { statusTopic } from '../shared/topics';
import type { Mqtt5TransportOptions } from './mqtt5-transport';

/**
 * The device status (docs/CONTRACTS.md, "Device status") that MqttPublisher's MQTT 5 connection
 * carries: "online" retained after every connection, "offline/stopped" retained before a clean
 * stop, and "offline/connection-lost" as the connection's retained last will, sent by the broker
 * only after willDelaySec without a reconnect, so a short blip is not reported as an outage.
 */
export type DeviceStatus = StatusV1;

export const STATUS_SCHEMA = 'elevator.status/1';

/**
 * 30 s: longer than the transport's first reconnect waits (1 s minimum plus jitter) so a blip or
 * a broker-side disconnect does not flap the status, short enough for a dashboard to see a dead
 * device within a minute.
 */
export const DEFAULT_WILL_DELAY_SEC = 30;

export function deviceStatus(
  device: string,
  clientId: string,
  startedAt: Date,
  willDelaySec: number,
  status: DeviceStatus['status'],
  reason: DeviceStatus['reason'],
  time: Date,
): DeviceStatus {
  return { schema: STATUS_SCHEMA, device, status, reason, clientId, startedAt: startedAt.toISOString(), time: time.toISOString(), willDelaySec };
}

/** The transport options that make one MQTT 5 connection the device's status source. */
export function deviceStatusOptions(
  device: string,
  clientId: string,
  willDelaySec: number,
  now: () => Date = () => new Date(),
): Required<Pick<Mqtt5TransportOptions, 'will' | 'announce'>> {
  const topic = statusTopic(device);
  const startedAt = now();
  const message = (status: DeviceStatus['status'], reason: DeviceStatus['reason'], time: Date) => JSON.stringify(deviceStatus(device, clientId, startedAt, willDelaySec, status, reason, time));
  return {
    will: { topic, payload: message('offline', 'connection-lost', startedAt), delaySec: willDelaySec, retain: true },
    announce: { topic, online: () => message('online', 'connected', now()), stopped: () => message('offline', 'stopped', now()) },
  };
}
