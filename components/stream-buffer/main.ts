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
      metrics: () => ({ store: latest, dropsByReason: dropsByReason(latest) }),
      applyConfiguration: (next) => buffer.reconfigure(next),
      deferUpdate: () => buffer.updateDeferral(),
      async stop() {
        await buffer.stop();
        await store.close();
      },
    };
  },
});

/** Records dropped by policy, per reason, summed over the streams (the per-stream figures stay in store.streams). */
function dropsByReason(stats: BufferStats | undefined): Record<string, number> {
  const totals: Record<string, number> = {};
  for (const stream of stats?.streams ?? []) {
    for (const [reason, count] of Object.entries(stream.drops)) totals[reason] = (totals[reason] ?? 0) + count;
  }
  return totals;
}
