/**
 * How MqttPublisher reaches the broker. Two implementations share one contract (and one conformance
 * suite, test/conformance/transport-conformance.ts): Greengrass IPC (PublishToIoTCore through the nucleus) and direct MQTT 5.
 *
 * publish() resolves once the message is accepted for QoS 1 delivery. That is NOT proof of
 * delivery (the nucleus may only have spooled it); proof is the cloud's ack watermark.
 * publish() rejects with BackpressureError when the path is full or throttled (nucleus spooler
 * full, broker quota): the caller should wait and retry, and nothing is lost. Any other
 * rejection is TransportError. Publishes leave the device at AWS IoT Core's per-connection pace
 * (100/s, 512 KiB/s): over IPC the nucleus paces its connection; MQTT 5 paces its own.
 */
export interface Transport {
  readonly name: string;
  publish(topic: string, payload: Buffer, options: { qos: 0 | 1; retain?: boolean }): Promise<void>;
  subscribe(filter: string, onMessage: (topic: string, payload: Buffer) => void): Promise<void>;
  close(): Promise<void>;
}

export class BackpressureError extends Error {
  override readonly name = 'BackpressureError';
}

export class TransportError extends Error {
  override readonly name = 'TransportError';
  constructor(
    message: string,
    /** "unauthorized" is a deployment mistake (policy), not a network problem. */
    readonly kind: 'unauthorized' | 'connection' | 'other',
  ) {
    super(message);
  }
}
