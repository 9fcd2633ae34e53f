import { join } from 'node:path';
import type { Logger } from '../../components/shared/logger';
import { monotonicMs } from '../../components/shared/monotonic';
import { StreamStore } from '../../components/shared/store';
import { Mqtt5Transport } from '../../components/mqtt-publisher/mqtt5-transport';
import { Publisher, type PublisherConfig } from '../../components/mqtt-publisher/publisher';
import { doorCycleData } from './cloud-fixtures';
import { tempRoot } from './runtime-fixture';

/**
 * One device's delivery path without Greengrass: a real stream store file, the real
 * MqttPublisher and the real MQTT 5 transport (the SDK client) to a broker. Records are appended
 * as the acquisition appends them; the test decides when and how many. Many of these run in one
 * process, so a fleet costs a few SQLite files and MQTT connections rather than four processes each.
 */
export interface SimDevice {
  thing: string;
  store: StreamStore;
  publisher: Publisher;
  /** Appends `count` door-cycle records (valid under their data contract) in one transaction. */
  append(count: number): Promise<void>;
  /** Records still in the store (not yet acked). */
  backlog(): Promise<number>;
  stop(): Promise<void>;
}

export const SIM_STREAM = 'door-cycle';

export const SIM_PUBLISHER_CONFIG: PublisherConfig = {
  maxEnvelopeBytes: 100_000,
  maxRecordsPerEnvelope: 10,
  idleIntervalMs: 50,
  resendAfterMs: 5_000,
  backpressureBaseMs: 50,
  backpressureMaxMs: 1_000,
  maxBackfillRecords: 10_000,
  reportRepeatMs: 5_000,
};

export async function startSimDevice(thing: string, brokerUrl: string, logger: Logger, overrides: Partial<PublisherConfig> = {}): Promise<SimDevice> {
  const store = await StreamStore.open(join(tempRoot(`sim-${thing}-`), 'store.sqlite'), { owner: true, logger });
  const transport = new Mqtt5Transport({
    brokerUrl,
    clientId: thing,
    minReconnectDelayMs: 100,
    maxReconnectDelayMs: 1_000,
    ackTimeoutSec: 10,
    logger,
  });
  transport.start();
  await transport.waitConnected(10_000);
  const publisher = new Publisher(store, transport, thing, { ...SIM_PUBLISHER_CONFIG, ...overrides }, logger);
  await publisher.start();
  let counter = 0;
  return {
    thing,
    store,
    publisher,
    async append(count) {
      await store.append(
        Array.from({ length: count }, () => ({ stream: SIM_STREAM, priority: 2, time: Date.now(), mono: monotonicMs(), data: doorCycleData((counter += 1)) })),
      );
    },
    async backlog() {
      return (await store.stats()).backlogRecords;
    },
    async stop() {
      await publisher.stop();
      await transport.close();
      await store.close();
    },
  };
}
