import { runComponent } from '../shared/component';
import { openStoreWhenHealthy, storePathFromEnv } from '../shared/store-open';
import { scheduleOffsetMs } from '../shared/schedule';
import { Acquisition } from './acquisition';
import { domainLimitsOf, sensorAcquisitionConfigSchema, type SensorAcquisitionConfig } from './config';
import { buildSensorSource } from './sources';

// Wiring only: source (signals -> deriver) -> acquisition -> store.
void runComponent<SensorAcquisitionConfig>({
  name: 'SensorAcquisition',
  configSchema: sensorAcquisitionConfigSchema,
  heartbeatIntervalMs: (config) => config.heartbeatIntervalMs,
  async start({ config, logger, thingName }) {
    const store = await openStoreWhenHealthy(storePathFromEnv(), logger);
    const built = buildSensorSource(config, logger);
    const acquisition = new Acquisition(built.source, store, config, logger, Math.random, undefined, domainLimitsOf(config));
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
