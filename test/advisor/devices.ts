// Devices the advisor can judge. The device under test is the project's real Mqtt5Transport (the
// SDK's unmodified aws-crt Mqtt5Client underneath). The other profile is a deliberately
// non-conforming client (mqtt.js with a constant reconnect period) that exists so the suite can
// prove it is able to fail.
import mqtt from 'mqtt';
import winston from 'winston';
import { Mqtt5Transport } from '../../components/mqtt-publisher/mqtt5-transport';

export interface DeviceSettings {
  brokerUrl: string;
  clientId: string;
  keepAliveSec?: number;
  /** Absent: the transport's production default (MQTT5_DEFAULTS). */
  minReconnectDelayMs?: number;
  maxReconnectDelayMs?: number;
  minConnectedTimeToResetReconnectDelayMs?: number;
  ackTimeoutSec?: number;
  caPath?: string;
  serverName?: string;
}

export interface DeviceUnderTest {
  start(): void;
  publish(topic: string, payload: Buffer): Promise<void>;
  subscribe(filter: string, onMessage: (topic: string, payload: Buffer) => void): Promise<void>;
  close(): Promise<void>;
}

export interface DeviceProfile {
  name: string;
  create(settings: DeviceSettings): DeviceUnderTest;
}

/** The transport logs a warning at every reconnect; the advisor judges packets, not logs. */
function silentLogger(): winston.Logger {
  return winston.createLogger({ silent: true, transports: [new winston.transports.Console()] });
}

export const mqtt5TransportProfile: DeviceProfile = {
  name: 'Mqtt5Transport (aws-crt Mqtt5Client)',
  create(settings) {
    const transport = new Mqtt5Transport({ ...settings, logger: silentLogger() });
    return {
      start: () => transport.start(),
      publish: (topic, payload) => transport.publish(topic, payload, { qos: 1 }),
      subscribe: (filter, onMessage) => transport.subscribe(filter, onMessage),
      close: () => transport.close(),
    };
  },
};

/** A fixed reconnect period and no jitter: the backoff cases must fail it. */
export const CONSTANT_RECONNECT_PERIOD_MS = 300;

export const constantBackoffMqttJsProfile: DeviceProfile = {
  name: `mqtt.js, MQTT 3.1.1, constant reconnectPeriod ${CONSTANT_RECONNECT_PERIOD_MS} ms (negative control)`,
  create(settings) {
    let client: mqtt.MqttClient | undefined;
    const required = (): mqtt.MqttClient => {
      if (!client) throw new Error('mqtt.js control: start() first');
      return client;
    };
    return {
      start: () => {
        client = mqtt.connect(settings.brokerUrl, {
          clientId: settings.clientId,
          protocolVersion: 4,
          keepalive: settings.keepAliveSec ?? 60,
          reconnectPeriod: CONSTANT_RECONNECT_PERIOD_MS,
          connectTimeout: 5000,
          clean: true,
        });
        client.on('error', () => undefined);
      },
      publish: async (topic, payload) => {
        await required().publishAsync(topic, payload, { qos: 1 });
      },
      subscribe: async (filter, onMessage) => {
        const c = required();
        c.on('message', (topic, payload) => onMessage(topic, payload));
        await c.subscribeAsync(filter, { qos: 1 });
      },
      close: async () => {
        await client?.endAsync(true);
      },
    };
  },
};
