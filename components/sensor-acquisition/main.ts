import { runComponent } from '../shared/component';
import { openStoreWhenHealthy, storePathFromEnv } from '../shared/store-open';
import { scheduleOffsetMs } from '../shared/schedule';
import { dirname, join } from 'node:path';
import { Acquisition } from './acquisition';
import { LOSS_JOURNAL_FILE } from './loss-journal';
import { domainLimitsOf, sensorAcquisitionConfigSchema, type SensorAcquisitionConfig } from './config';
import { buildSensorSource } from './sources';

// Wiring only: source (signals -> deriver) -> acquisition -> store.
void runComponent<SensorAcquisitionConfig>({
  name: 'SensorAcquisition',
  configSchema: sensorAcquisitionConfigSchema,
  heartbeatIntervalMs: (config) => config.heartbeatIntervalMs,
  async start({ config, logger, thingName }) {
    const storePath = storePathFromEnv();
    const store = await openStoreWhenHealthy(storePath, logger);
    const built = buildSensorSource(config, logger);
    const acquisition = new Acquisition(built.source, store, config, logger, Math.random, undefined, domainLimitsOf(config));
    // Beside the store: writable wherever the store is, under Greengrass and under systemd alike.
    await acquisition.recoverLossJournal(join(dirname(storePath), LOSS_JOURNAL_FILE));
    const offset = scheduleOffsetMs(thingName, config.sampleIntervalMs);
    acquisition.start(offset);
    logger.info('sampling', { epoch: store.epoch, scheduleOffsetMs: offset, source: config.source.type, rawSamples: config.rawSamples });
    return {
      metrics: () => ({ ...acquisition.metrics, ...acquisition.clock.metrics, epoch: store.epoch, source: built.source.metrics?.() ?? {} }),
      applyConfiguration(next) {
        built.reconfigure(next);
        acquisition.reconfigure(next, domainLimitsOf(next));
      },
      async stop() {
        await acquisition.stop();
        await built.close();
        await store.close();
      },
    };
  },
});
