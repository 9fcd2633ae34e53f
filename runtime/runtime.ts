import { randomBytes } from 'node:crypto';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Logger } from '../components/shared/logger';
import { Authorizer } from './authorization';
import { startEmbeddedBroker, type EmbeddedBroker } from './broker';
import { EventStreamRpcServer } from './eventstream-server';
import { IotBridge } from './iot-bridge';
import { CLI_PRINCIPAL, IpcService, type ComponentHandle, type RuntimeControl } from './ipc-service';
import { LocalPubSub } from './local-pubsub';
import { dependencyOrder, interpolate, loadRecipes, mergeConfiguration, type LoadedRecipe } from './recipe';
import { ComponentSupervisor, type ComponentState } from './supervisor';

export interface RuntimeOptions {
  /** Root folder, like the nucleus's /greengrass/v2: work/, logs/, ipc.socket, status.json. */
  root: string;
  recipesDir: string;
  /** Folder holding <ComponentName>/ artifact folders ({artifacts:path}). */
  artifactsDir: string;
  thingName: string;
  /** MQTT broker standing in for AWS IoT Core; an embedded aedes broker when absent. */
  brokerUrl?: string;
  /** Deployment-style configuration merges: { "<ComponentName>": { ...MERGE } }. */
  configurationMerge?: Record<string, Record<string, unknown>>;
  spoolerMaxBytes?: number;
  maxInFlightPublishes?: number;
  errorResetTimeMs?: number;
  restartDelayMs?: number;
  /** Start only these components (and nothing else); all when absent. */
  only?: string[];
  region?: string;
  logger: Logger;
}

export interface RuntimeStatus {
  pid: number;
  thingName: string;
  brokerUrl: string;
  socketPath: string;
  components: Record<string, { state: ComponentState; pid?: number; restarts: number; errors: number }>;
  spooler: { bytes: number; messages: number; rejected: number };
  ipc: { connectionsAccepted: number; connectionsRejected: number; protocolErrors: number };
}

interface ManagedComponent extends ComponentHandle {
  loaded: LoadedRecipe;
  token: string;
  config: Record<string, unknown>;
  supervisor: ComponentSupervisor;
}

/**
 * The local stand-in for the Greengrass nucleus: loads recipes, runs each component's lifecycle
 * with its own IPC token, serves IPC on a Unix socket and bridges IoT Core topics to a broker.
 */
export class LocalRuntime implements RuntimeControl {
  private readonly components = new Map<string, ManagedComponent>();
  private readonly tokens = new Map<string, string>();
  private readonly order: ManagedComponent[] = [];
  private server?: EventStreamRpcServer;
  private bridge?: IotBridge;
  private broker?: EmbeddedBroker;
  private brokerUrl = '';
  private statusTimer?: NodeJS.Timeout;
  private stopped = false;
  readonly socketPath: string;
  readonly root: string;

  constructor(private readonly options: RuntimeOptions) {
    this.root = resolve(options.root);
    this.socketPath = join(this.root, 'ipc.socket');
  }

  async start(): Promise<void> {
    // Recipes are checked first: a malformed one stops the runtime before anything runs.
    const recipes = dependencyOrder(loadRecipes(this.options.recipesDir)).filter(
      (r) => !this.options.only || this.options.only.includes(r.recipe.ComponentName),
    );
    for (const folder of ['work', 'logs', 'cli_ipc_info']) mkdirSync(join(this.root, folder), { recursive: true });

    if (this.options.brokerUrl) {
      this.brokerUrl = this.options.brokerUrl;
    } else {
      this.broker = await startEmbeddedBroker();
      this.brokerUrl = this.broker.url;
    }
    const logger = this.options.logger;
    this.bridge = new IotBridge({
      brokerUrl: this.brokerUrl,
      clientId: this.options.thingName,
      spoolerMaxBytes: this.options.spoolerMaxBytes,
      maxInFlightPublishes: this.options.maxInFlightPublishes,
      logger,
    });
    this.bridge.start();
    const service = new IpcService(this, new Authorizer(this.options.thingName), new LocalPubSub(), this.bridge, logger);
    this.server = new EventStreamRpcServer(this.socketPath, service, logger);
    await this.server.listen();

    const cliToken = randomBytes(16).toString('hex');
    this.tokens.set(cliToken, CLI_PRINCIPAL);
    writePrivateJson(join(this.root, 'cli_ipc_info', 'ipc.json'), { socketPath: this.socketPath, token: cliToken });

    for (const loaded of recipes) this.register(loaded);
    this.writeStatus();
    this.statusTimer = setInterval(() => this.writeStatus(), 1000);
    logger.info('local runtime started', { root: this.root, socket: this.socketPath, broker: this.brokerUrl, components: this.order.map((c) => c.name) });
    for (const component of this.order) {
      if (await this.hardDependenciesRunning(component)) await component.supervisor.start();
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.statusTimer) clearInterval(this.statusTimer);
    // Dependents first, so a component never outlives what it depends on.
    for (const component of [...this.order].reverse()) await component.supervisor.stop();
    this.writeStatus();
    await this.server?.close();
    await this.bridge?.stop();
    await this.broker?.close();
    for (const component of this.order) component.supervisor.close();
    this.options.logger.info('local runtime stopped');
  }

  status(): RuntimeStatus {
    const components: RuntimeStatus['components'] = {};
    for (const c of this.order) {
      components[c.name] = { state: c.supervisor.state, pid: c.supervisor.pid, restarts: c.supervisor.restarts, errors: c.supervisor.errorCount };
    }
    return {
      pid: process.pid,
      thingName: this.options.thingName,
      brokerUrl: this.brokerUrl,
      socketPath: this.socketPath,
      components,
      spooler: { bytes: this.bridge?.spooler.sizeBytes ?? 0, messages: this.bridge?.spooler.length ?? 0, rejected: this.bridge?.spooler.counters.rejected ?? 0 },
      ipc: this.server?.counters ?? { connectionsAccepted: 0, connectionsRejected: 0, protocolErrors: 0 },
    };
  }

  /**
   * A component's IPC token, for tools and tests in the runtime's own process that act as that
   * component (the nucleus hands it only to the component's processes, as SVCUID).
   */
  tokenFor(component: string): string | undefined {
    return this.components.get(component)?.token;
  }

  principalForToken(token: string): string | undefined {
    return this.tokens.get(token);
  }

  component(name: string): ComponentHandle | undefined {
    return this.components.get(name);
  }

  async stopComponent(name: string): Promise<void> {
    await this.components.get(name)?.supervisor.stop();
  }

  async restartComponent(name: string): Promise<void> {
    await this.components.get(name)?.supervisor.restart();
  }

  private register(loaded: LoadedRecipe): void {
    const name = loaded.recipe.ComponentName;
    const defaults = (loaded.recipe.ComponentConfiguration?.DefaultConfiguration ?? {}) as Record<string, unknown>;
    const config = mergeConfiguration(defaults, this.options.configurationMerge?.[name] ?? {});
    const token = randomBytes(16).toString('hex');
    const workPath = join(this.root, 'work', name);
    const dependencies = Object.keys(loaded.recipe.ComponentDependencies ?? {});
    const interpolateFor = (text: string): string => {
      const unresolved: string[] = [];
      const result = interpolate(
        text,
        {
          component: name,
          thingName: this.options.thingName,
          rootPath: this.root,
          dependencies,
          paths: (owner) => {
            const artifacts = resolve(this.options.artifactsDir, owner);
            return { artifacts, decompressed: artifacts, work: join(this.root, 'work', owner) };
          },
          configuration: (owner) => this.components.get(owner)?.config,
        },
        unresolved,
      );
      if (unresolved.length > 0) this.options.logger.warn('recipe variables left unresolved', { componentName: name, variables: unresolved });
      return result;
    };
    const component: ManagedComponent = {
      name,
      loaded,
      token,
      config,
      configuration: () => component.config,
      reportState: (state) => component.supervisor.reportState(state),
      supervisor: new ComponentSupervisor({
        name,
        lifecycle: loaded.lifecycle,
        workPath,
        logFile: join(this.root, 'logs', `${name}.log`),
        environment: () => ({
          SVCUID: token,
          AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT: this.socketPath,
          AWS_IOT_THING_NAME: this.options.thingName,
          AWS_REGION: this.options.region ?? 'us-east-1',
          AWS_DEFAULT_REGION: this.options.region ?? 'us-east-1',
          GGC_VERSION: '2.14.0-local',
        }),
        interpolate: interpolateFor,
        errorResetTimeMs: this.options.errorResetTimeMs,
        restartDelayMs: this.options.restartDelayMs,
        logger: this.options.logger,
        onStateChange: (componentName, state) => {
          this.options.logger.info('component state', { componentName, state });
          this.writeStatus();
        },
      }),
    };
    this.components.set(name, component);
    this.tokens.set(token, name);
    this.order.push(component);
  }

  /** A dependent starts once its HARD dependencies run (nucleus: dependencies must be RUNNING or FINISHED). */
  private async hardDependenciesRunning(component: ManagedComponent): Promise<boolean> {
    const hard = Object.entries(component.loaded.recipe.ComponentDependencies ?? {})
      .filter(([, spec]) => spec.DependencyType !== 'SOFT')
      .map(([name]) => this.components.get(name))
      .filter((c): c is ManagedComponent => c !== undefined);
    for (const dependency of hard) {
      while (!['RUNNING', 'FINISHED'].includes(dependency.supervisor.state)) {
        if (dependency.supervisor.state === 'BROKEN' || this.stopped) {
          this.options.logger.error('not starting a component: a HARD dependency is BROKEN', { componentName: component.name, dependency: dependency.name });
          return false;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    return true;
  }

  private writeStatus(): void {
    try {
      writePrivateJson(join(this.root, 'status.json'), this.status());
    } catch (error) {
      this.options.logger.warn('could not write status.json', { error: (error as Error).message });
    }
  }
}

function writePrivateJson(path: string, value: unknown): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, JSON.stringify(value, null, 2), { mode: 0o600 });
  renameSync(tmp, path);
}
