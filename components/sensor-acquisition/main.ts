import { runComponent } from '../shared/component';
import { openStoreWhenHealthy, storePathFromEnv } from '../shared/store-open';
import { Acquisition, scheduleOffsetMs } from './acquisition';
import { sensorAcquisitionConfigSchema, type SensorAcquisitionConfig } from './config';
import { ElevatorSimulator } from './simulator';

// Wiring only: simulator -> acquisition -> store.
void runComponent<SensorAcquisitionConfig>({
  name: 'SensorAcquisition',
  configSchema: sensorAcquisitionConfigSchema,
  heartbeatIntervalMs: (config) => config.heartbeatIntervalMs,
  async start({ config, logger, thingName }) {
    const store = await openStoreWhenHealthy(storePathFromEnv(), logger);
    const simulator = new ElevatorSimulator(config.simulator);
    const acquisition = new Acquisition(simulator, store, config, logger);
    const offset = scheduleOffsetMs(thingName, config.sampleIntervalMs);
    acquisition.start(offset);
    logger.info('sampling', { epoch: store.epoch, scheduleOffsetMs: offset });
    return {
      metrics: () => ({ ...acquisition.metrics, ...acquisition.clock.metrics, epoch: store.epoch }),
      applyConfiguration(next) {
        simulator.reconfigure(next.simulator);
        acquisition.reconfigure(next);
      },
      async stop() {
        await acquisition.stop();
        await store.close();
      },
    };
  },
});
