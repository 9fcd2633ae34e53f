import { classifyIpcError, describeIpcError, type GreengrassIpc } from '../shared/ipc';
import { BackpressureError, TransportError, type Transport } from './transport';

/**
 * Transport over Greengrass IPC. A ServiceError from PublishToIoTCore is how the nucleus says
 * its spooler refused the message (mqtt.spooler.maxSizeInBytes reached) and how nucleus lite says
 * it is offline, so it is back-pressure: transient by design.
 */
export class IpcTransport implements Transport {
  readonly name = 'greengrass-ipc';

  constructor(private readonly ipc: GreengrassIpc) {}

  async publish(topic: string, payload: Buffer, options: { qos: 0 | 1; retain?: boolean }): Promise<void> {
    try {
      await this.ipc.publishToIoTCore(topic, payload, options);
    } catch (error) {
      const kind = classifyIpcError(error);
      const reason = describeIpcError(error);
      if (kind === 'service') throw new BackpressureError(`PublishToIoTCore refused: ${reason}`);
      throw new TransportError(`PublishToIoTCore failed: ${reason}`, kind === 'unauthorized' ? 'unauthorized' : kind === 'connection' ? 'connection' : 'other');
    }
  }

  async subscribe(filter: string, onMessage: (topic: string, payload: Buffer) => void): Promise<void> {
    await this.ipc.subscribeToIoTCore(filter, (payload, topic) => onMessage(topic, payload));
  }

  async close(): Promise<void> {
    // The IPC connection belongs to the component and is closed by it.
  }
}
