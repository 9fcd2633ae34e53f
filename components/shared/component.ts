import { monitorEventLoopDelay } from 'node:perf_hooks';
import { HeartbeatFigures } from './heartbeat-metrics';
import { describeIpcError } from './ipc';
import { createLogger, errorMessage, type Logger } from './logger';
import { connectPlatform, type Platform } from './platform';
import { heartbeatTopic } from './topics';
import { compileValidator } from './validation';
import { componentSettings, NO_DEFERRAL, type LiveConfigurable, type UpdateDeferral } from './deployment-hooks';

export { retryIpc } from './platform-ipc';

/**
 * What every component's main.ts shares: the Greengrass conventions from the brief, on whichever
 * platform the process runs (platform.ts: Greengrass IPC, or standalone without a nucleus).
 * - configuration is read and validated (ajv, defaults applied); an invalid configuration is
 *   unrecoverable, so the process exits non-zero and the nucleus (or systemd) decides;
 * - the component reports RUNNING once its parts have started;
 * - it publishes a heartbeat on local pub/sub every heartbeatIntervalMs;
 * - SIGTERM/SIGINT finish in-flight work, close the platform, then process.exit (aws-crt can keep
 *   the event loop alive forever);
 * - an unexpected error is logged and ends the process with a non-zero code.
 */
export interface ComponentContext<C> {
  name: string;
  thingName: string;
  config: C;
  platform: Platform;
  logger: Logger;
}

export interface RunningComponent<C = unknown> extends LiveConfigurable<C> {
  /** Finishes in-flight work and releases resources; called once on SIGTERM. */
  stop(): Promise<void>;
  /** The component's own figures for its heartbeat. */
  metrics(): Record<string, unknown> | Promise<Record<string, unknown>>;
}

export interface ComponentDefinition<C extends { logLevel?: string }> {
  /** Short name used in logs and heartbeat topics, e.g. "MqttPublisher"; standalone, also its configuration file's name. */
  name: string;
  configSchema: object;
  heartbeatIntervalMs: (config: C) => number;
  start(context: ComponentContext<C>): Promise<RunningComponent<C>>;
}

/**
 * Until start() returns, a component may be opening its store, checking it, or migrating its
 * schema: an update then waits (bounded by DeploymentHooks' total) rather than cut that short.
 */
const WHILE_STARTING: UpdateDeferral = { ms: 1000, reason: 'starting: opening the store (and migrating its schema if needed)' };

/** The logLevel key every component's configuration accepts; it applies live. */
export const LOG_LEVEL_SCHEMA = { enum: ['error', 'warn', 'info', 'debug'] };
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

export function thingNameFromEnv(): string {
  const thing = process.env.AWS_IOT_THING_NAME;
  if (!thing) throw new Error('AWS_IOT_THING_NAME is not set; the nucleus sets it for every component; without Greengrass, set it in the environment (docs/RUN-WITHOUT-GREENGRASS.md)');
  return thing;
}

export async function runComponent<C extends { logLevel?: string }>(definition: ComponentDefinition<C>): Promise<void> {
  const thingName = process.env.AWS_IOT_THING_NAME ?? 'unknown-thing';
  const logger = createLogger(definition.name, { thing: thingName });
  const loopDelay = monitorEventLoopDelay({ resolution: 20 });
  loopDelay.enable();
  let running: RunningComponent<C> | undefined;
  let platform: Platform | undefined;
  let heartbeat: NodeJS.Timeout | undefined;
  let stopping = false;

  const shutdown = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info('stopping', { signal });
    if (heartbeat) clearInterval(heartbeat);
    try {
      await running?.stop();
      await platform?.close();
      logger.info('stopped cleanly');
      process.exit(0);
    } catch (error) {
      logger.error('shutdown failed', { error: errorMessage(error) });
      process.exit(1);
    }
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));

  try {
    thingNameFromEnv();
    platform = await connectPlatform({ component: definition.name, thingName, logger });
    const on = platform;
    let config = await readConfiguration<C>(on, definition.configSchema);
    if (config.logLevel) logger.level = config.logLevel;
    const watch = on.configurationWatch<C>({
      logger,
      schema: definition.configSchema,
      current: () => config,
      onValidConfiguration: async (next) => {
        config = next;
        logger.level = next.logLevel ?? process.env.LOG_LEVEL ?? 'info';
      },
      component: {
        applyConfiguration: (next) => running?.applyConfiguration?.(next),
        deferUpdate: () => (running ? (running.deferUpdate?.() ?? NO_DEFERRAL) : WHILE_STARTING),
      },
    });
    await watch.watchUpdates();
    running = await definition.start({ name: definition.name, thingName, config, platform: on, logger });
    await watch.watchConfiguration();
    await on.updateState('RUNNING');
    const started = Date.now();
    const topic = heartbeatTopic(definition.name);
    const figures = new HeartbeatFigures();
    const beat = async (): Promise<void> => {
      const own = { ...(await running!.metrics()), ...watch.metrics, ...on.metrics };
      const metrics = { ...own, ...figures.common(own, on.counters, Date.now()) };
      const message = {
        component: definition.name,
        time: new Date().toISOString(),
        uptimeSec: Math.round((Date.now() - started) / 1000),
        metrics: { ...metrics, eventLoopLagMs: Math.round(loopDelay.percentile(99) / 1e6), rssBytes: process.memoryUsage.rss() },
      };
      loopDelay.reset();
      await on.publishLocal(topic, message);
    };
    heartbeat = setInterval(() => {
      beat().catch((error) => logger.warn('heartbeat not published', { error: describeIpcError(error) }));
    }, definition.heartbeatIntervalMs(config));
    void beat().catch(() => undefined);
    logger.info('running', { platform: on.kind, config });
  } catch (error) {
    logger.error('component failed to start', { error: errorMessage(error), stack: (error as Error)?.stack });
    await running?.stop().catch(() => undefined);
    process.exit(1);
  }
}

/** The platform's configuration, validated; an invalid value names its field and ends the process (exit 1). */
async function readConfiguration<C>(platform: Platform, schema: object): Promise<C> {
  const raw = await platform.readConfiguration();
  const checked = compileValidator<C>(schema)(componentSettings(raw));
  if (!checked.ok) throw new Error(`invalid configuration${platform.configurationSource ? ` in ${platform.configurationSource}` : ''}: ${checked.reason}`);
  return checked.value;
}
