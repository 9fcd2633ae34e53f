import type { MqttClient } from 'mqtt';
import { resolvesWithin } from './backoff';

/**
 * Ends an MQTT.js client: a graceful DISCONNECT, which MQTT.js sends only once every in-flight
 * QoS 1 publish has its PUBACK, or, after timeoutMs, the socket closed under it. Over a link that
 * swallows everything those PUBACKs never come, and a second end(true) does nothing while the
 * first waits (MQTT.js returns at once when already disconnecting), so the stream is destroyed.
 * What was in flight stays in the broker's session for the next connection.
 */
export async function endMqttClient(client: MqttClient, timeoutMs: number): Promise<'graceful' | 'forced'> {
  if (await resolvesWithin(client.endAsync(false), timeoutMs)) return 'graceful';
  client.stream?.destroy();
  return 'forced';
}
