import { randomBytes } from 'node:crypto';
import type { BrokerTlsFiles } from '../components/shared/broker-tls';
import { scheduleOffsetMs } from '../components/shared/schedule';
import { DEFAULT_PERIODIC_STATUS_INTERVAL_SEC, FleetStatusReporter } from './fleet-status';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Logger } from '../components/shared/logger';
import { errorMessage } from '../components/shared/logger';
import { Authorizer } from './authorization';
import { startEmbeddedBroker, type EmbeddedBroker } from './broker';
import { ConfigTree, ConfigurationService, DEFAULT_VALUE_TIMESTAMP, isPlainObject, resolveConfiguration, type ConfigPath, type ConfigSnapshot } from './configuration';
import {
  CLI_DEPLOYMENT_DEFAULTS,
  CLOUD_DEPLOYMENT_DEFAULTS,
  ComponentUpdateService,
  DEFAULT_SETTLE_MS,
  DEFAULT_UPDATE_POLICY_TIMEOUT_SEC,
  DEFAULT_VALIDATION_TIMEOUT_SEC,
  DeploymentFailure,
  DeploymentManager,
  type Activation,
  type AppliedDeployment,
  type ComponentUpdatePolicyAction,
  type DeploymentHost,
  type DeploymentPlan,
  type DeploymentRecord,
  type FailureHandlingPolicy,
  type LocalDeploymentRequest,
  type PlannedComponent,
} from './deployment';
import { EventStreamRpcServer } from './eventstream-server';
import { acquireRootLock, assertNoLiveRuntime, reapOrphanedComponents } from './previous-instance';
import { IotBridge } from './iot-bridge';
import { CLI_PRINCIPAL, IpcService, type ComponentHandle, type RuntimeControl } from './ipc-service';
import { LocalPubSub } from './local-pubsub';
import { compareVersions, dependencyOrder, interpolate, loadRecipeVersions, loadRecipes, mergeConfiguration, RecipeError, type LoadedRecipe } from './recipe';
import { duplicatePolicyIds, type AccessControl } from './authorization';
import { shadowOperations } from './shadow-operations';
import { ShadowStore } from './shadow-store';
import { ComponentSupervisor, type ComponentState } from './supervisor';

export interface DeploymentPolicyOptions {
  /**
   * `cloud` (default): deployments behave as a cloud deployment with default policies
   * (NOTIFY_COMPONENTS, ROLLBACK). `cli`: as the nucleus treats a Greengrass CLI local deployment
   * (SKIP_NOTIFY_COMPONENTS, DO_NOTHING unless the request names a policy).
   */
  profile?: 'cloud' | 'cli';
  componentUpdatePolicy?: ComponentUpdatePolicyAction;
  /** Seconds each component has to answer a preUpdateEvent (default 60). */
  updatePolicyTimeoutSec?: number;
  failureHandlingPolicy?: FailureHandlingPolicy;
  /** Seconds to wait for configuration validity reports (default 20). */
  validationTimeoutSec?: number;
  /** How long updated components must stay RUNNING/FINISHED (default 2000 ms; the runtime's own). */
  settleMs?: number;
}

export interface RuntimeOptions {
  /** Root folder, like the nucleus's /greengrass/v2: work/, logs/, ipc.socket, status.json. */
  root: string;
  recipesDir: string;
  /** Folder holding <ComponentName>/ artifact folders ({artifacts:path}). */
  artifactsDir: string;
  thingName: string;
  /** MQTT broker standing in for AWS IoT Core; an embedded aedes broker when absent. */
  brokerUrl?: string;
  /** Client certificate, key and CA (PEM paths) for an mqtts:// brokerUrl, as the nucleus's own IoT Core connection has. */
  brokerTls?: BrokerTlsFiles;
  /** Deployment-style configuration merges: { "<ComponentName>": { ...MERGE } }. */
  configurationMerge?: Record<string, Record<string, unknown>>;
  spoolerMaxBytes?: number;
  maxInFlightPublishes?: number;
  /** Nucleus mqtt.spooler.keepQos0WhenOffline (default false). */
  keepQos0WhenOffline?: boolean;
  /** Pace the IoT connection to 100 publishes/s and 512 KiB/s as the nucleus does (default true). */
  iotPacing?: boolean;
  errorResetTimeMs?: number;
  restartDelayMs?: number;
  /** Start only these components (and nothing else); all when absent. */
  only?: string[];
  region?: string;
  deployments?: DeploymentPolicyOptions;
  /** Nucleus fleetStatus periodicStatusPublishIntervalSeconds (default 86,400). */
  fleetStatusIntervalSec?: number;
  /** Called on every component state change, in order (for tools and tests). */
  onComponentState?: (componentName: string, state: ComponentState) => void;
  logger: Logger;
}

export interface RuntimeStatus {
  pid: number;
  thingName: string;
  brokerUrl: string;
  socketPath: string;
  components: Record<string, { state: ComponentState; pid?: number; restarts: number; errors: number; version?: string }>;
  /** pacedWaits: how often the IoT connection's pace held a spooled message back. */
  spooler: { bytes: number; messages: number; rejected: number; pacedWaits: number };
  ipc: { connectionsAccepted: number; connectionsRejected: number; protocolErrors: number };
}

interface ManagedComponent extends ComponentHandle {
  loaded: LoadedRecipe;
  /** {artifacts:path} of this component. */
  artifactsPath: string;
  token: string;
  /** The live configuration, with per-key timestamps. */
  tree: ConfigTree;
  /**
   * The configuration recipe variables are interpolated with. The nucleus interpolates the
   * lifecycle when a deployment resolves it (KernelConfigResolver.resolve), so UpdateConfiguration
   * does not change what {configuration:/x} expands to; a deployment does.
   */
  resolvedConfig: Record<string, unknown>;
  supervisor: ComponentSupervisor;
}

/** One recipe version in the runtime's component store, and where its artifacts are. */
interface StoredRecipe {
  loaded: LoadedRecipe;
  artifactsRoot: string;
}

/** What a component is set back to on rollback. */
interface ComponentSnapshot {
  loaded: LoadedRecipe;
  artifactsPath: string;
  tree: ConfigSnapshot;
  resolvedConfig: Record<string, unknown>;
  broken: boolean;
}

interface Target {
  name: string;
  loaded: LoadedRecipe;
  artifactsPath: string;
  /** Writes the target configuration into the live tree, recording what changed. */
  applyConfiguration(tree: ConfigTree, changes: ConfigPath[]): void;
  /** The configuration of a component that does not exist yet. */
  initialTree(): ConfigTree;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** The nucleus version the runtime claims to components (GGC_VERSION) and in fleet status. */
const GGC_VERSION = '2.14.0-local';

/**
 * The local stand-in for the Greengrass nucleus: loads recipes, runs each component's lifecycle
 * with its own IPC token, serves IPC on a Unix socket, bridges IoT Core topics to a broker, keeps
 * each component's configuration and runs local deployments.
 */
export class LocalRuntime implements RuntimeControl {
  private readonly components = new Map<string, ManagedComponent>();
  private readonly tokens = new Map<string, string>();
  private order: ManagedComponent[] = [];
  private readonly store = new Map<string, Map<string, StoredRecipe>>();
  private server?: EventStreamRpcServer;
  private bridge?: IotBridge;
  private broker?: EmbeddedBroker;
  private brokerUrl = '';
  private statusTimer?: NodeJS.Timeout;
  private fleetStatus?: FleetStatusReporter;
  private fleetStatusTimer?: NodeJS.Timeout;
  private stopped = false;
  private releaseRootLock?: () => void;
  private configuration?: ConfigurationService;
  private deploymentManager?: DeploymentManager;
  readonly socketPath: string;
  readonly root: string;

  constructor(private readonly options: RuntimeOptions) {
    this.root = resolve(options.root);
    this.socketPath = join(this.root, 'ipc.socket');
  }

  async start(): Promise<void> {
    // Recipes are checked first: a malformed one stops the runtime before anything runs.
    const all = dependencyOrder(loadRecipes(this.options.recipesDir));
    for (const loaded of all) this.addToStore(loaded, this.options.artifactsDir);
    const recipes = all.filter((r) => !this.options.only || this.options.only.includes(r.recipe.ComponentName));
    const duplicates = duplicatePolicyIds(
      recipes.map((r) => ({
        name: r.recipe.ComponentName,
        accessControl: mergeConfiguration(defaultsOf(r), this.options.configurationMerge?.[r.recipe.ComponentName] ?? {}).accessControl as AccessControl | undefined,
      })),
    );
    if (duplicates.length > 0) {
      throw new RecipeError(`accessControl: policy ids must be unique across components: ${duplicates.map((d) => `"${d.policyId}" in ${d.components.join(' and ')}`).join('; ')}`);
    }
    for (const folder of ['work', 'logs', 'cli_ipc_info']) mkdirSync(join(this.root, folder), { recursive: true });
    this.releaseRootLock = acquireRootLock(this.root);
    await assertNoLiveRuntime(this.socketPath);
    reapOrphanedComponents(this.root, this.options.logger);

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
      keepQos0WhenOffline: this.options.keepQos0WhenOffline,
      pacing: this.options.iotPacing === false ? false : undefined,
      tls: this.options.brokerTls,
      logger,
    });
    this.bridge.start();
    const configuration = new ConfigurationService({ tree: (name) => this.components.get(name)?.tree }, logger);
    const updates = new ComponentUpdateService((name) => this.components.has(name), logger);
    const policy = this.options.deployments ?? {};
    const defaults = policy.profile === 'cli' ? CLI_DEPLOYMENT_DEFAULTS : CLOUD_DEPLOYMENT_DEFAULTS;
    const deployments = new DeploymentManager(this.deploymentHost(), configuration, updates, {
      updatePolicy: policy.componentUpdatePolicy ?? defaults.updatePolicy,
      updatePolicyTimeoutMs: (policy.updatePolicyTimeoutSec ?? DEFAULT_UPDATE_POLICY_TIMEOUT_SEC) * 1000,
      validationTimeoutMs: (policy.validationTimeoutSec ?? DEFAULT_VALIDATION_TIMEOUT_SEC) * 1000,
      failureHandlingPolicy: policy.failureHandlingPolicy ?? defaults.failureHandlingPolicy,
      settleMs: policy.settleMs ?? DEFAULT_SETTLE_MS,
      logger,
    });
    this.configuration = configuration;
    this.deploymentManager = deployments;
    const service = new IpcService(this, new Authorizer(this.options.thingName), new LocalPubSub(), this.bridge, logger, {
      ...configuration.operations(),
      ...updates.operations(),
      ...deployments.operations(),
      ...shadowOperations(new ShadowStore(this.root)),
    });
    this.server = new EventStreamRpcServer(this.socketPath, service, logger);
    await this.server.listen();

    const cliToken = randomBytes(16).toString('hex');
    this.tokens.set(cliToken, CLI_PRINCIPAL);
    writePrivateJson(join(this.root, 'cli_ipc_info', 'ipc.json'), { socketPath: this.socketPath, token: cliToken });

    for (const loaded of recipes) {
      const name = loaded.recipe.ComponentName;
      // Defaults carry timestamp 1, a deployment's MERGE its own time (KernelConfigResolver).
      const tree = new ConfigTree({}, DEFAULT_VALUE_TIMESTAMP);
      tree.update([], defaultsOf(loaded), 'MERGE', DEFAULT_VALUE_TIMESTAMP, []);
      const merge = this.options.configurationMerge?.[name];
      if (merge) tree.update([], merge, 'MERGE', Date.now(), []);
      this.register(loaded, this.artifactsPathFor(name, loaded.recipe.ComponentVersion), tree);
    }
    this.writeStatus();
    this.statusTimer = setInterval(() => this.writeStatus(), 1000);
    this.startFleetStatus();
    logger.info('local runtime started', { root: this.root, socket: this.socketPath, broker: this.brokerUrl, components: this.order.map((c) => c.name) });
    for (const component of [...this.order]) await component.supervisor.start();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.statusTimer) clearInterval(this.statusTimer);
    if (this.fleetStatusTimer) clearTimeout(this.fleetStatusTimer);
    // Dependents first, so a component never outlives what it depends on.
    for (const component of [...this.order].reverse()) await component.supervisor.stop();
    this.writeStatus();
    await this.server?.close();
    await this.bridge?.stop();
    await this.broker?.close();
    for (const component of this.order) component.supervisor.close();
    this.releaseRootLock?.();
    this.options.logger.info('local runtime stopped');
  }

  /** Fleet status to IoT Core (runtime/fleet-status.ts): every component at launch, then on changes and on the cadence. */
  private startFleetStatus(): void {
    const reporter = new FleetStatusReporter({
      thingName: this.options.thingName,
      ggcVersion: GGC_VERSION,
      components: () => this.order.map((c) => ({ name: c.name, version: c.loaded.recipe.ComponentVersion, state: c.supervisor.state })),
      publish: (topic, message) => {
        try {
          this.bridge!.publish(topic, Buffer.from(JSON.stringify(message)), 1, false);
        } catch (error) {
          this.options.logger.warn('fleet status not published', { topic, trigger: message.trigger, error: errorMessage(error) });
        }
      },
      shuttingDown: () => this.stopped,
    });
    this.fleetStatus = reporter;
    reporter.publishComplete('NUCLEUS_LAUNCH');
    const intervalMs = (this.options.fleetStatusIntervalSec ?? DEFAULT_PERIODIC_STATUS_INTERVAL_SEC) * 1000;
    // The nucleus spreads the cadence over the interval so a fleet does not report at once.
    const cadence = (delayMs: number) => {
      this.fleetStatusTimer = setTimeout(() => {
        reporter.publishComplete('CADENCE');
        cadence(intervalMs);
      }, delayMs);
      this.fleetStatusTimer.unref();
    };
    cadence(scheduleOffsetMs(this.options.thingName, intervalMs) || intervalMs);
  }

  status(): RuntimeStatus {
    const components: RuntimeStatus['components'] = {};
    for (const c of this.order) {
      components[c.name] = {
        state: c.supervisor.state,
        pid: c.supervisor.pid,
        restarts: c.supervisor.restarts,
        errors: c.supervisor.errorCount,
        version: c.loaded.recipe.ComponentVersion,
      };
    }
    return {
      pid: process.pid,
      thingName: this.options.thingName,
      brokerUrl: this.brokerUrl,
      socketPath: this.socketPath,
      components,
      spooler: { bytes: this.bridge?.spooler.sizeBytes ?? 0, messages: this.bridge?.spooler.length ?? 0, rejected: this.bridge?.spooler.counters.rejected ?? 0, pacedWaits: this.bridge?.counters.pacedWaits ?? 0 },
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

  /** Queues a local deployment in process (what CreateLocalDeployment does); returns its id. */
  deploy(request: LocalDeploymentRequest): string {
    if (!this.deploymentManager) throw new Error('the runtime is not started');
    return this.deploymentManager.create(request);
  }

  /** The record of a deployment once it has finished. */
  async deploymentFinished(deploymentId: string): Promise<DeploymentRecord | undefined> {
    return this.deploymentManager?.whenFinished(deploymentId);
  }

  private register(loaded: LoadedRecipe, artifactsPath: string, tree: ConfigTree): ManagedComponent {
    const name = loaded.recipe.ComponentName;
    const token = randomBytes(16).toString('hex');
    const workPath = join(this.root, 'work', name);
    const component: ManagedComponent = {
      name,
      loaded,
      artifactsPath,
      token,
      tree,
      resolvedConfig: tree.toJSON(),
      configuration: () => component.tree.toJSON(),
      reportState: (state) => component.supervisor.reportState(state),
      supervisor: new ComponentSupervisor({
        name,
        lifecycle: () => component.loaded.lifecycle,
        workPath,
        logFile: join(this.root, 'logs', `${name}.log`),
        environment: () => ({
          SVCUID: token,
          AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT: this.socketPath,
          AWS_IOT_THING_NAME: this.options.thingName,
          AWS_REGION: this.options.region ?? 'us-east-1',
          AWS_DEFAULT_REGION: this.options.region ?? 'us-east-1',
          GGC_VERSION,
        }),
        interpolate: (text) => this.interpolateFor(name, text, false),
        errorResetTimeMs: this.options.errorResetTimeMs,
        restartDelayMs: this.options.restartDelayMs,
        waitForDependencies: (cancelled) => this.waitForDependencies(name, cancelled),
        logger: this.options.logger,
        onStateChange: (componentName, state) => {
          this.options.logger.info('component state', { componentName, state });
          this.options.onComponentState?.(componentName, state);
          this.fleetStatus?.onComponentState(componentName, state);
          this.writeStatus();
          this.propagateDependencyState(componentName);
        },
      }),
    };
    this.components.set(name, component);
    this.tokens.set(token, name);
    this.reorder();
    return component;
  }

  private unregister(name: string): void {
    const component = this.components.get(name);
    if (!component) return;
    this.components.delete(name);
    this.tokens.delete(component.token);
    component.supervisor.close();
    this.reorder();
  }

  private reorder(): void {
    this.order = dependencyOrder([...this.components.values()].map((c) => c.loaded)).map((l) => this.components.get(l.recipe.ComponentName)!);
  }

  private interpolateFor(name: string, text: string, quiet: boolean): string {
    const self = this.components.get(name);
    const unresolved: string[] = [];
    const result = interpolate(
      text,
      {
        component: name,
        thingName: this.options.thingName,
        rootPath: this.root,
        dependencies: Object.keys(self?.loaded.recipe.ComponentDependencies ?? {}),
        paths: (owner) => {
          const artifacts = this.components.get(owner)?.artifactsPath ?? resolve(this.options.artifactsDir, owner);
          return { artifacts, decompressed: artifacts, work: join(this.root, 'work', owner) };
        },
        configuration: (owner) => this.components.get(owner)?.resolvedConfig,
      },
      unresolved,
    );
    if (!quiet && unresolved.length > 0) this.options.logger.warn('recipe variables left unresolved', { componentName: name, variables: unresolved });
    return result;
  }

  /** HARD dependencies that this runtime runs (a SOFT one, or one left out by --only, does not hold a start back). */
  private hardDependencies(component: ManagedComponent): ManagedComponent[] {
    return Object.entries(component.loaded.recipe.ComponentDependencies ?? {})
      .filter(([, spec]) => spec.DependencyType !== 'SOFT')
      .map(([name]) => this.components.get(name))
      .filter((c): c is ManagedComponent => c !== undefined);
  }

  /**
   * A HARD dependency is ready when RUNNING or FINISHED, or STOPPING unless its Startup failed
   * (GreengrassService.dependencyReady, dependencyFinishedStarting).
   */
  private dependencyReady(dependency: ManagedComponent): boolean {
    const state = dependency.supervisor.state;
    return state === 'RUNNING' || state === 'FINISHED' || (state === 'STOPPING' && !dependency.supervisor.didStartupError);
  }

  /**
   * Waits, after Install, until every HARD dependency is ready. The nucleus waits without end; here
   * a BROKEN dependency ends the wait, the component stays INSTALLED, and it starts when the
   * dependency is ready again (propagateDependencyState), which has the same effect without
   * holding back the components started after it.
   */
  private async waitForDependencies(name: string, cancelled: () => boolean): Promise<boolean> {
    for (;;) {
      const component = this.components.get(name);
      if (!component || this.stopped || cancelled()) return false;
      const hard = this.hardDependencies(component);
      if (hard.every((d) => this.dependencyReady(d))) return true;
      const broken = hard.find((d) => d.supervisor.state === 'BROKEN');
      if (broken) {
        this.options.logger.error('waiting to start a component: a HARD dependency is BROKEN', { componentName: name, dependency: broken.name });
        return false;
      }
      await sleep(100);
    }
  }

  /**
   * When a HARD dependency leaves the ready states, a STARTING or RUNNING dependent is restarted
   * (GreengrassService.createDependencyListener); the restart then waits for the dependency again.
   * A dependent that gave up waiting is started once its dependencies are ready.
   */
  private propagateDependencyState(name: string): void {
    if (this.stopped) return;
    const dependency = this.components.get(name);
    if (!dependency) return;
    const ready = this.dependencyReady(dependency);
    for (const dependent of this.components.values()) {
      if (!this.hardDependencies(dependent).includes(dependency)) continue;
      const supervisor = dependent.supervisor;
      if (!ready && (supervisor.state === 'STARTING' || supervisor.state === 'RUNNING') && !supervisor.restartPending) {
        this.options.logger.info('restarting a component because a HARD dependency is not ready', { componentName: dependent.name, dependency: name, dependencyState: dependency.supervisor.state });
        void supervisor.restart().catch((error) => this.options.logger.error('dependent restart failed', { componentName: dependent.name, error: errorMessage(error) }));
      } else if (ready && supervisor.awaitingDependencies && this.hardDependencies(dependent).every((d) => this.dependencyReady(d))) {
        supervisor.awaitingDependencies = false;
        void supervisor.start();
      }
    }
  }

  private writeStatus(): void {
    try {
      writePrivateJson(join(this.root, 'status.json'), this.status());
    } catch (error) {
      this.options.logger.warn('could not write status.json', { error: (error as Error).message });
    }
  }

  // ---- component store and deployments ----

  private addToStore(loaded: LoadedRecipe, artifactsRoot: string): void {
    const { ComponentName: name, ComponentVersion: version } = loaded.recipe;
    const versions = this.store.get(name) ?? new Map<string, StoredRecipe>();
    versions.set(version, { loaded, artifactsRoot });
    this.store.set(name, versions);
  }

  /**
   * {artifacts:path}: `<root>/<Name>/<Version>` when that folder exists (the nucleus's layout,
   * packages/artifacts/<Name>/<Version>), else `<root>/<Name>` (this project's build layout).
   */
  private artifactsPathFor(name: string, version: string): string {
    const root = this.store.get(name)?.get(version)?.artifactsRoot ?? this.options.artifactsDir;
    const versioned = resolve(root, name, version);
    return existsSync(versioned) ? versioned : resolve(root, name);
  }

  private deploymentHost(): DeploymentHost {
    return {
      plan: (id, request, timestamp) => this.planDeployment(id, request, timestamp),
      currentTree: (name) => this.components.get(name)?.tree,
      apply: (plan) => this.applyDeployment(plan),
      waitForComponents: (activation, settleMs) => this.waitForComponents(activation, settleMs),
      removeObsolete: (plan) => this.removeComponents(plan.remove),
    };
  }

  /**
   * The target of a deployment (DeploymentDocumentConverter, DependencyResolver,
   * KernelConfigResolver): the running components, minus rootComponentsToRemove, plus
   * rootComponentVersionsToAdd, plus the dependencies they need; the recipes of
   * recipeDirectoryPath join the component store first (the CLI copies them there).
   */
  private planDeployment(deploymentId: string, request: LocalDeploymentRequest, timestamp: number): DeploymentPlan {
    if (request.recipeDirectoryPath) {
      let loaded: LoadedRecipe[];
      try {
        loaded = loadRecipeVersions(request.recipeDirectoryPath);
      } catch (error) {
        throw new DeploymentFailure(errorMessage(error), 'LOCAL_RECIPE_CORRUPTED');
      }
      for (const recipe of loaded) this.addToStore(recipe, request.artifactsDirectoryPath ?? this.options.artifactsDir);
    } else if (request.artifactsDirectoryPath) {
      for (const [name, versions] of this.store) {
        if (!existsSync(join(request.artifactsDirectoryPath, name))) continue;
        for (const stored of versions.values()) stored.artifactsRoot = request.artifactsDirectoryPath;
      }
    }
    const roots = new Map<string, string | undefined>();
    for (const component of this.components.values()) roots.set(component.name, component.loaded.recipe.ComponentVersion);
    for (const name of request.rootComponentsToRemove ?? []) roots.delete(name);
    for (const [name, version] of Object.entries(request.rootComponentVersionsToAdd ?? {})) roots.set(name, version);

    const target = new Map<string, StoredRecipe>();
    const visit = (name: string, version: string | undefined, requiredBy?: string): void => {
      if (target.has(name)) return;
      const versions = this.store.get(name);
      const running = this.components.get(name)?.loaded.recipe.ComponentVersion;
      const chosen = version ?? running ?? [...(versions?.keys() ?? [])].sort(compareVersions).pop();
      const stored = chosen ? versions?.get(chosen) : undefined;
      if (!stored) {
        const what = `${name}${chosen ? ` version ${chosen}` : ''}`;
        throw new DeploymentFailure(`No recipe for ${what}${requiredBy ? ` (a dependency of ${requiredBy})` : ''}; give its folder as recipeDirectoryPath`, 'LOCAL_RECIPE_NOT_FOUND');
      }
      target.set(name, stored);
      for (const [dependency, spec] of Object.entries(stored.loaded.recipe.ComponentDependencies ?? {})) {
        const excluded = this.options.only && !this.options.only.includes(dependency) && !this.components.has(dependency) && !roots.has(dependency);
        if (this.store.has(dependency) && !excluded) visit(dependency, undefined, name);
        else if (spec.DependencyType !== 'SOFT' && !excluded) {
          throw new DeploymentFailure(`${name} has a HARD dependency on ${dependency}, which has no recipe`, 'LOCAL_RECIPE_NOT_FOUND');
        }
      }
    };
    for (const [name, version] of roots) visit(name, version);

    for (const name of Object.keys(request.componentToConfiguration ?? {})) {
      if (!target.has(name)) throw new DeploymentFailure(`componentToConfiguration names ${name}, which this deployment does not include`, 'COMPONENT_UPDATE_ERROR');
    }
    let ordered: LoadedRecipe[];
    try {
      ordered = dependencyOrder([...target.values()].map((s) => s.loaded));
    } catch (error) {
      throw new DeploymentFailure(errorMessage(error), error instanceof RecipeError ? 'COMPONENT_UPDATE_ERROR' : 'DEPLOYMENT_FAILURE');
    }
    const components: PlannedComponent[] = ordered.map((loaded) => {
      const name = loaded.recipe.ComponentName;
      const existing = this.components.get(name);
      const warnings: string[] = [];
      let proposed: ConfigTree;
      try {
        proposed = resolveConfiguration(existing?.tree, defaultsOf(loaded), request.componentToConfiguration?.[name], timestamp, warnings);
      } catch (error) {
        throw new DeploymentFailure(`${name}: ${errorMessage(error)}`, 'COMPONENT_UPDATE_ERROR');
      }
      for (const warning of warnings) this.options.logger.error('configuration update skipped a path', { deploymentId, componentName: name, warning });
      return {
        name,
        recipe: loaded,
        artifactsPath: this.artifactsPathFor(name, loaded.recipe.ComponentVersion),
        proposed,
        isNew: !existing,
        versionChanges: existing !== undefined && existing.loaded.recipe.ComponentVersion !== loaded.recipe.ComponentVersion,
      };
    });
    const remove = [...this.components.keys()].filter((name) => !target.has(name));
    this.options.logger.info('deployment planned', {
      deploymentId,
      components: components.map((c) => `${c.name}@${c.recipe.recipe.ComponentVersion}${c.isNew ? ' (new)' : c.versionChanges ? ' (new version)' : ''}`),
      remove,
    });
    return { deploymentId, timestamp, components, remove };
  }

  private applyDeployment(plan: DeploymentPlan): AppliedDeployment {
    const snapshot = new Map<string, ComponentSnapshot>();
    for (const c of this.components.values()) {
      snapshot.set(c.name, { loaded: c.loaded, artifactsPath: c.artifactsPath, tree: c.tree.snapshot(), resolvedConfig: c.resolvedConfig, broken: c.supervisor.state === 'BROKEN' });
    }
    // The live configuration is replaced by the resolved one at the deployment's timestamp
    // (DeploymentActivator.createDeploymentMergeBehavior: configuration REPLACE).
    const targets: Target[] = plan.components.map((p) => ({
      name: p.name,
      loaded: p.recipe,
      artifactsPath: p.artifactsPath,
      applyConfiguration: (tree, changes) => tree.update([], p.proposed.toJSON(), 'REPLACE', plan.timestamp, changes),
      initialTree: () => {
        const tree = new ConfigTree({}, DEFAULT_VALUE_TIMESTAMP);
        tree.restore(p.proposed.snapshot(), []);
        return tree;
      },
    }));
    const activation = this.activate(targets, plan.deploymentId, []);
    return {
      activation,
      rollback: () => this.rollback(snapshot, plan),
    };
  }

  /**
   * Rollback (DefaultActivator.rollback): the configuration snapshot goes back with its own
   * timestamps, components the deployment added go away, and only components that were not
   * BROKEN before the deployment (nor depend on one that was) are waited for.
   */
  private rollback(snapshot: Map<string, ComponentSnapshot>, plan: DeploymentPlan): Activation {
    const added = [...this.components.keys()].filter((name) => !snapshot.has(name));
    const targets: Target[] = [...snapshot].map(([name, s]) => ({
      name,
      loaded: s.loaded,
      artifactsPath: s.artifactsPath,
      applyConfiguration: (tree, changes) => tree.restore(s.tree, changes),
      initialTree: () => {
        const tree = new ConfigTree({}, DEFAULT_VALUE_TIMESTAMP);
        tree.restore(s.tree, []);
        return tree;
      },
    }));
    const wasBroken = new Set([...snapshot].filter(([, s]) => s.broken).map(([name]) => name));
    const activation = this.activate(targets, `${plan.deploymentId} (rollback)`, added, (name) => !wasBroken.has(name));
    const brokenAndDependers = new Set(wasBroken);
    for (let grew = true; grew; ) {
      grew = false;
      for (const c of this.components.values()) {
        if (brokenAndDependers.has(c.name)) continue;
        if (this.hardDependencies(c).some((d) => brokenAndDependers.has(d.name))) {
          brokenAndDependers.add(c.name);
          grew = true;
        }
      }
    }
    activation.tracked = activation.tracked.filter((name) => !brokenAndDependers.has(name));
    return activation;
  }

  /**
   * Applies target recipes and configurations, then starts what each change needs, as the
   * nucleus's config listeners do (GenericExternalService constructor): a new component starts; a
   * new version, a changed Install step or a BROKEN component is reinstalled; another change to
   * the interpolated lifecycle or Setenv (Shutdown excepted) restarts it; a configuration change
   * alone only notifies SubscribeToConfigurationUpdate subscribers.
   */
  private activate(targets: Target[], label: string, toRemove: string[], reinstallIfBroken: (name: string) => boolean = () => true): Activation {
    const mergeTime = Date.now();
    const before = new Map<string, { version: string; signature: LifecycleSignature }>();
    for (const t of targets) {
      const existing = this.components.get(t.name);
      if (existing) before.set(t.name, { version: existing.loaded.recipe.ComponentVersion, signature: this.lifecycleSignature(existing.name) });
    }
    const added = new Set<string>();
    for (const t of targets) {
      const existing = this.components.get(t.name);
      if (!existing) {
        this.register(t.loaded, t.artifactsPath, t.initialTree());
        added.add(t.name);
        continue;
      }
      existing.loaded = t.loaded;
      existing.artifactsPath = t.artifactsPath;
      const changes: ConfigPath[] = [];
      t.applyConfiguration(existing.tree, changes);
      if (changes.length > 0) this.options.logger.info('configuration changed by a deployment', { deployment: label, componentName: t.name, keys: changes.map((p) => p.join('/')) });
      this.configuration?.notify(t.name, changes);
    }
    for (const t of targets) {
      const c = this.components.get(t.name)!;
      c.resolvedConfig = c.tree.toJSON();
    }
    this.reorder();
    const actions: Array<Promise<unknown>> = [];
    for (const name of toRemove) actions.push(this.removeComponents([name]));
    const names = new Set(targets.map((t) => t.name));
    for (const c of this.order) {
      if (!names.has(c.name)) continue;
      if (added.has(c.name)) {
        actions.push(c.supervisor.start());
        continue;
      }
      const previous = before.get(c.name)!;
      const now = this.lifecycleSignature(c.name);
      const supervisor = c.supervisor;
      if (previous.version !== c.loaded.recipe.ComponentVersion || previous.signature.install !== now.install || (supervisor.state === 'BROKEN' && reinstallIfBroken(c.name))) {
        this.options.logger.info('reinstalling a component', { deployment: label, componentName: c.name, from: previous.version, to: c.loaded.recipe.ComponentVersion });
        actions.push(supervisor.reinstall());
      } else if (previous.signature.other !== now.other) {
        this.options.logger.info('restarting a component: its lifecycle changed', { deployment: label, componentName: c.name });
        actions.push(supervisor.restart());
      }
    }
    return { tracked: [...names], mergeTime, actions: Promise.allSettled(actions) };
  }

  /** The interpolated lifecycle, split as the nucleus's listener splits it: Install, and everything else but Shutdown. */
  private lifecycleSignature(name: string): LifecycleSignature {
    const c = this.components.get(name)!;
    const expand = (value: unknown): unknown => {
      if (typeof value === 'string') return this.interpolateFor(name, value, true);
      if (Array.isArray(value)) return value.map(expand);
      if (isPlainObject(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, expand(v)]));
      return value;
    };
    const { Install, Shutdown, ...rest } = c.loaded.lifecycle;
    void Shutdown;
    return { install: JSON.stringify(expand(Install ?? null)), other: JSON.stringify(expand(rest)) };
  }

  /**
   * Succeeds once every tracked component has been RUNNING or FINISHED for `settleMs` after its
   * lifecycle actions; fails as soon as one turns BROKEN after the merge
   * (DeploymentConfigMerger.waitForServicesToStart: "Service %s in broken state after deployment").
   */
  private async waitForComponents(activation: Activation, settleMs: number): Promise<void> {
    let actionsDone = false;
    void activation.actions.then(() => (actionsDone = true));
    let goodSince: number | undefined;
    for (;;) {
      for (const name of activation.tracked) {
        const supervisor = this.components.get(name)?.supervisor;
        if (supervisor?.state === 'BROKEN' && (supervisor.brokenAt ?? 0) >= activation.mergeTime) {
          throw new DeploymentFailure(`Service ${name} in broken state after deployment`, 'COMPONENT_BROKEN');
        }
      }
      if (this.stopped) throw new DeploymentFailure('the runtime stopped during the deployment', 'COMPONENT_UPDATE_ERROR');
      const good =
        actionsDone &&
        activation.tracked.every((name) => {
          const state = this.components.get(name)?.supervisor.state;
          return state === undefined || state === 'RUNNING' || state === 'FINISHED';
        });
      if (!good) goodSince = undefined;
      else {
        // A component that fails and restarts between two polls looks RUNNING at both; its
        // state-change time shows the flap, so the settle period starts again from it.
        // Monotonic, so that a device clock stepped back (NTP after boot) cannot stall it.
        const lastChange = Math.max(0, ...activation.tracked.map((name) => this.components.get(name)?.supervisor.stateChangedMono ?? 0));
        goodSince = Math.max(goodSince ?? performance.now(), lastChange);
        if (performance.now() - goodSince >= settleMs) return;
      }
      await sleep(100);
    }
  }

  private async removeComponents(names: string[]): Promise<void> {
    for (const name of names) {
      const component = this.components.get(name);
      if (!component) continue;
      this.options.logger.info('removing a component', { componentName: name });
      await component.supervisor.stop();
      this.unregister(name);
    }
  }
}

interface LifecycleSignature {
  install: string;
  other: string;
}

function defaultsOf(loaded: LoadedRecipe): Record<string, unknown> {
  return (loaded.recipe.ComponentConfiguration?.DefaultConfiguration ?? {}) as Record<string, unknown>;
}

function writePrivateJson(path: string, value: unknown): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, JSON.stringify(value, null, 2), { mode: 0o600 });
  renameSync(tmp, path);
}
