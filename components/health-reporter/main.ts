import { dirname } from 'node:path';
import { runComponent } from '../shared/component';
import { healthTopic, heartbeatWildcard } from '../shared/topics';
import { healthReporterConfigSchema, type HealthReporterConfig } from './config';
import { HealthShadowWriter } from './health-shadow';
import { HealthReporter } from './reporter';

// Wiring only: heartbeats in over local pub/sub, health out to IoT Core (retained), on either platform.
void runComponent<HealthReporterConfig>({
  name: 'HealthReporter',
  configSchema: healthReporterConfigSchema,
  heartbeatIntervalMs: (config) => config.heartbeatIntervalMs,
  async start({ config, logger, thingName, platform }) {
    const storeDir = process.env.STORE_PATH ? dirname(process.env.STORE_PATH) : undefined;
    const shadow = new HealthShadowWriter(thingName, (thing, name, document) => platform.updateThingShadow(thing, name, document), logger);
    const reporter = new HealthReporter(
      thingName,
      config,
      storeDir,
      async (message) => {
        await platform.publishToIoTCore(healthTopic(thingName), JSON.stringify(message), { qos: 1, retain: true });
        await shadow.write(message);
      },
      logger,
    );
    await platform.subscribeLocal(heartbeatWildcard(), (message) => reporter.onHeartbeat(message));
    reporter.start();
    return {
      metrics: () => ({ ...reporter.metrics, ...shadow.metrics }),
      applyConfiguration: (next) => reporter.reconfigure(next),
      stop: () => reporter.stop(),
    };
  },
});
