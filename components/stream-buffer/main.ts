import { runComponent } from '../shared/component';
import { StreamStore } from '../shared/store';
import { storePathFromEnv } from '../shared/store-open';
import { StreamBuffer, type BufferStats } from './buffer';
import { streamBufferConfigSchema, type StreamBufferConfig } from './config';

// Wiring only: StreamBuffer owns the store file (integrity check and quarantine at open).
void runComponent<StreamBufferConfig>({
  name: 'StreamBuffer',
  configSchema: streamBufferConfigSchema,
  heartbeatIntervalMs: (config) => config.heartbeatIntervalMs,
  async start({ config, logger }) {
    const store = await StreamStore.open(storePathFromEnv(), { owner: true, logger });
    let latest: BufferStats | undefined;
    const buffer = new StreamBuffer(store, config, logger, async (stats) => {
      latest = stats;
    });
    latest = await buffer.publishOnce();
    buffer.start();
    return {
      metrics: () => ({ store: latest }),
      applyConfiguration: (next) => buffer.reconfigure(next),
      deferUpdate: () => buffer.updateDeferral(),
      async stop() {
        await buffer.stop();
        await store.close();
      },
    };
  },
});
