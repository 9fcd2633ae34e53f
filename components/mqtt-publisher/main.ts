import { runComponent } from '../shared/component';
import { openStoreWhenHealthy, storePathFromEnv } from '../shared/store-open';
import { mqttPublisherConfigSchema, type MqttPublisherConfig } from './config';
import { IpcTransport } from './ipc-transport';
import { Publisher } from './publisher';

// Wiring only: store -> publisher -> IPC transport; acks come back on the same transport.
void runComponent<MqttPublisherConfig>({
  name: 'MqttPublisher',
  configSchema: mqttPublisherConfigSchema,
  heartbeatIntervalMs: (config) => config.heartbeatIntervalMs,
  async start({ config, logger, thingName, ipc }) {
    const store = await openStoreWhenHealthy(storePathFromEnv(), logger);
    const publisher = new Publisher(store, new IpcTransport(ipc), thingName, config, logger);
    await publisher.start();
    return {
      metrics: () => ({ ...publisher.metrics, ...publisher.losses.metrics, ...publisher.backfill.metrics, epoch: store.epoch }),
      applyConfiguration: (next) => publisher.reconfigure(next),
      deferUpdate: () => publisher.updateDeferral(),
      async stop() {
        await publisher.stop();
        await store.close();
      },
    };
  },
});
