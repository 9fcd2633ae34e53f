import { Backoff, sleep } from './backoff';
import { DeploymentHooks } from './deployment-hooks';
import { GreengrassIpc, describeIpcError } from './ipc';
import type { Logger } from './logger';
import type { ConfigurationWatch, ConfigurationWatchOptions, Platform, PlatformCounters } from './platform';

/**
 * The platform under Greengrass: a thin wrapper over the components' IPC client, so behaviour
 * under the nucleus is what it was before the platform seam (same calls, same retries, same
 * deployment hooks).
 */
export class IpcPlatform implements Platform {
  readonly kind = 'greengrass' as const;

  private constructor(
    readonly ipc: GreengrassIpc,
    private readonly logger: Logger,
  ) {}

  static async connect(logger: Logger): Promise<IpcPlatform> {
    return new IpcPlatform(await GreengrassIpc.connect({ logger }), logger);
  }

  get counters(): PlatformCounters {
    return this.ipc.counters;
  }

  readConfiguration(): Promise<Record<string, unknown>> {
    return retryIpc(() => this.ipc.getConfiguration([]), 'GetConfiguration', this.logger);
  }

  publishLocal(topic: string, message: unknown): Promise<void> {
    return this.ipc.publishToTopic(topic, message);
  }

  subscribeLocal(topic: string, onMessage: (message: unknown, topic: string) => void): Promise<void> {
    return this.ipc.subscribeToTopic(topic, onMessage);
  }

  publishToIoTCore(topic: string, payload: Buffer | string, options: { qos?: 0 | 1; retain?: boolean } = {}): Promise<void> {
    return this.ipc.publishToIoTCore(topic, payload, options);
  }

  subscribeToIoTCore(filter: string, onMessage: (payload: Buffer, topic: string) => void): Promise<void> {
    return this.ipc.subscribeToIoTCore(filter, onMessage);
  }

  updateThingShadow(thingName: string, shadowName: string, document: Record<string, unknown>): Promise<unknown> {
    return this.ipc.updateThingShadow(thingName, shadowName, document);
  }

  updateState(state: 'RUNNING' | 'ERRORED'): Promise<void> {
    return retryIpc(() => this.ipc.updateState(state), `UpdateState ${state}`, this.logger);
  }

  configurationWatch<C>(options: ConfigurationWatchOptions<C>): ConfigurationWatch {
    return new DeploymentHooks<C>({ ...options, ipc: this.ipc });
  }

  close(): Promise<void> {
    return this.ipc.close();
  }
}

/** An IPC call that fails because the nucleus is busy or restarting is retried, not fatal. */
export async function retryIpc<T>(call: () => Promise<T>, what: string, logger: Logger, attempts = 8): Promise<T> {
  const backoff = new Backoff(200, 5_000);
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await call();
    } catch (error) {
      if (attempt >= attempts) throw new Error(`${what} failed ${attempts} times: ${describeIpcError(error)}`);
      const delay = backoff.nextDelayMs();
      logger.warn('IPC call failed; retrying', { call: what, attempt, delayMs: delay, error: describeIpcError(error) });
      await sleep(delay);
    }
  }
}
