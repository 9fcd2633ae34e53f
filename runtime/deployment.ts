import { randomUUID } from 'node:crypto';
import { statSync } from 'node:fs';
import type { Logger } from '../components/shared/logger';
import { errorMessage } from '../components/shared/logger';
import { AuthorizationError } from './authorization';
import { isPlainObject, willChange, type ConfigTree, type ConfigurationService, type ConfigurationUpdate } from './configuration';
import { CLI_PRINCIPAL, INVALID_ARGUMENTS, IpcError, RESOURCE_NOT_FOUND, SERVICE_ERROR, type CallContext, type OperationHandler } from './ipc-service';
import type { LoadedRecipe } from './recipe';

/**
 * Deployments, as the nucleus runs them (aws-greengrass-nucleus: DeploymentService,
 * DefaultDeploymentTask, DeploymentConfigMerger, UpdateSystemPolicyService,
 * DynamicComponentConfigurationValidator, DefaultActivator; Greengrass CLI: CLIEventStreamAgent).
 *
 * The sequence, after the target components and their configurations are resolved:
 *   1. notify and defer (NOTIFY_COMPONENTS): preUpdateEvent to every SubscribeToComponentUpdates
 *      stream; DeferComponentUpdate postpones by recheckAfterMs, after which everyone is notified
 *      again; each round waits at most the update policy timeout for the answers;
 *   2. validate: components whose configuration changes but whose version does not are asked
 *      over SubscribeToValidateConfigurationUpdates; a REJECTED report or no report within the
 *      timeout fails the deployment and nothing changes (FAILED_NO_STATE_CHANGE);
 *   3. update: configuration replaced (subscribers told), new versions reinstalled, lifecycle
 *      changes restarted, new components started; then every target component must reach
 *      RUNNING or FINISHED; one that becomes BROKEN fails the deployment, which then rolls back
 *      (ROLLBACK) or stays as it is (DO_NOTHING);
 *   4. postUpdateEvent to every SubscribeToComponentUpdates stream.
 * DeploymentConfigMerger.mergeInNewConfig queues the update action with UpdateSystemPolicyService
 * and the validator runs inside that action, so notification comes before validation.
 */

export type FailureHandlingPolicy = 'ROLLBACK' | 'DO_NOTHING';
export type ComponentUpdatePolicyAction = 'NOTIFY_COMPONENTS' | 'SKIP_NOTIFY_COMPONENTS';
export type DeploymentStatus = 'QUEUED' | 'IN_PROGRESS' | 'SUCCEEDED' | 'FAILED' | 'CANCELED';
export type DetailedDeploymentStatus =
  | 'SUCCESSFUL'
  | 'FAILED_NO_STATE_CHANGE'
  | 'FAILED_ROLLBACK_NOT_REQUESTED'
  | 'FAILED_ROLLBACK_COMPLETE'
  | 'FAILED_UNABLE_TO_ROLLBACK'
  | 'REJECTED';

/**
 * Seconds each component has to answer a preUpdateEvent: 60 (nucleus ComponentUpdatePolicy.java,
 * `timeout = 60`; API reference, DeploymentComponentUpdatePolicy.timeoutInSeconds "Default: 60").
 */
export const DEFAULT_UPDATE_POLICY_TIMEOUT_SEC = 60;
/** Seconds to wait for validity reports: 20 (DynamicComponentConfigurationValidator.DEFAULT_TIMEOUT_SECOND). */
export const DEFAULT_VALIDATION_TIMEOUT_SEC = 20;
/**
 * A cloud deployment's defaults: NOTIFY_COMPONENTS (ComponentUpdatePolicy.java; API reference
 * "Default: NOTIFY_COMPONENTS") and ROLLBACK (DeploymentDocument.java `failureHandlingPolicy =
 * ROLLBACK`; API reference, DeploymentPolicies "Default: ROLLBACK"). The nucleus gives a CLI
 * local deployment SKIP_NOTIFY_COMPONENTS and, when the request names no policy, DO_NOTHING
 * (DeploymentDocumentConverter.convertFromLocalOverrideRequestAndRoot and
 * convertFailureHandlingPolicyFromSDK); RuntimeOptions can select those instead.
 */
export const CLOUD_DEPLOYMENT_DEFAULTS = { updatePolicy: 'NOTIFY_COMPONENTS', failureHandlingPolicy: 'ROLLBACK' } as const;
export const CLI_DEPLOYMENT_DEFAULTS = { updatePolicy: 'SKIP_NOTIFY_COMPONENTS', failureHandlingPolicy: 'DO_NOTHING' } as const;
/**
 * How long every component the deployment touched must stay RUNNING or FINISHED before the
 * deployment counts as SUCCEEDED. The runtime's own: the nucleus polls the states every second
 * (DeploymentConfigMerger.WAIT_SVC_START_POLL_INTERVAL_MILLISEC) and fails on BROKEN; because a
 * Run process is RUNNING as soon as it is spawned, a version that crashes at once could pass a
 * single check, so the runtime watches for this long.
 */
export const DEFAULT_SETTLE_MS = 2000;

export interface LocalDeploymentRequest {
  groupName?: string;
  rootComponentVersionsToAdd?: Record<string, string>;
  rootComponentsToRemove?: string[];
  componentToConfiguration?: Record<string, ConfigurationUpdate>;
  recipeDirectoryPath?: string;
  artifactsDirectoryPath?: string;
  failureHandlingPolicy?: FailureHandlingPolicy;
}

export interface DeploymentRecord {
  deploymentId: string;
  status: DeploymentStatus;
  createdOn: number;
  request: LocalDeploymentRequest;
  detailedStatus?: DetailedDeploymentStatus;
  failureCause?: string;
  errorStack?: string[];
}

/** A failure with the nucleus's error code (DeploymentErrorCode). */
export class DeploymentFailure extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

export interface PlannedComponent {
  name: string;
  recipe: LoadedRecipe;
  artifactsPath: string;
  proposed: ConfigTree;
  isNew: boolean;
  versionChanges: boolean;
}

export interface DeploymentPlan {
  deploymentId: string;
  /** The request time; MERGE values are written with it (LocalOverrideRequest.requestTimestamp). */
  timestamp: number;
  /** Every component the deployment leaves in place, dependencies first. */
  components: PlannedComponent[];
  /** Components no longer wanted; removed once the rest runs (removeObsoleteServices). */
  remove: string[];
}

/** Configuration applied and lifecycle actions started; what to watch until they settle. */
export interface Activation {
  tracked: string[];
  mergeTime: number;
  actions: Promise<unknown>;
}

export interface AppliedDeployment {
  activation: Activation;
  rollback(): Activation;
}

/** What the deployment manager needs from the runtime. */
export interface DeploymentHost {
  /** Resolves the target components, versions and configurations; throws DeploymentFailure. */
  plan(deploymentId: string, request: LocalDeploymentRequest, timestamp: number): DeploymentPlan;
  currentTree(component: string): ConfigTree | undefined;
  apply(plan: DeploymentPlan): AppliedDeployment;
  /** Resolves once every tracked component settled RUNNING/FINISHED; rejects with DeploymentFailure on BROKEN. */
  waitForComponents(activation: Activation, settleMs: number): Promise<void>;
  removeObsolete(plan: DeploymentPlan): Promise<void>;
}

export interface DeploymentOptions {
  updatePolicy: ComponentUpdatePolicyAction;
  updatePolicyTimeoutMs: number;
  validationTimeoutMs: number;
  failureHandlingPolicy: FailureHandlingPolicy;
  settleMs: number;
  logger: Logger;
}

/**
 * SubscribeToComponentUpdates and DeferComponentUpdate, and the notify-and-defer rounds
 * (LifecycleIPCEventStreamAgent, UpdateSystemPolicyService).
 */
export class ComponentUpdateService {
  private readonly subscribers = new Map<string, Set<(event: unknown) => void>>();
  private readonly pending = new Map<string, (answer: { recheckAfterMs?: number; message?: string }) => void>();

  constructor(
    private readonly isComponent: (name: string) => boolean,
    private readonly logger: Logger,
  ) {}

  operations(): Record<string, OperationHandler> {
    return {
      'aws.greengrass#SubscribeToComponentUpdates': (c) => this.subscribe(c),
      'aws.greengrass#DeferComponentUpdate': (c) => this.defer(c),
    };
  }

  /**
   * Notifies every subscriber, waits for each one's DeferComponentUpdate (at most `timeoutMs` per
   * round), sleeps the largest recheckAfterMs and notifies again, until a round asks for no
   * more time (UpdateSystemPolicyService.startup, getTimeToReCheck). The nucleus does not cap the
   * number of rounds: a component can keep deferring, and a component that never answers costs
   * `timeoutMs` per round.
   */
  async notifyAndWait(deploymentId: string, timeoutMs: number): Promise<void> {
    for (let round = 1; ; round += 1) {
      const answers: Array<Promise<{ component: string; recheckAfterMs?: number; message?: string } | undefined>> = [];
      for (const [component, emitters] of this.subscribers) {
        const key = pendingKey(component, deploymentId);
        answers.push(
          new Promise((resolve) => {
            this.pending.set(key, (answer) => resolve({ component, ...answer }));
          }),
        );
        for (const emit of emitters) emit({ preUpdateEvent: { deploymentId, isGgcRestarting: false } });
      }
      if (answers.length === 0) return;
      this.logger.info('pre-update event sent', { deploymentId, round, components: [...this.subscribers.keys()] });
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), timeoutMs);
      });
      const settled: Array<{ component: string; recheckAfterMs?: number; message?: string } | undefined> = answers.map(() => undefined);
      answers.forEach((answer, i) => void answer.then((value) => (settled[i] = value)));
      const outcome = await Promise.race([Promise.all(answers).then(() => 'answered' as const), timedOut]);
      clearTimeout(timer);
      // Late answers now get "Time limit to respond to PreComponentUpdateEvent exceeded".
      for (const key of [...this.pending.keys()]) if (key.endsWith(`\u0000${deploymentId}`)) this.pending.delete(key);
      let recheckAfterMs = 0;
      for (const answer of settled) {
        if (answer && typeof answer.recheckAfterMs === 'number' && answer.recheckAfterMs > recheckAfterMs) {
          recheckAfterMs = answer.recheckAfterMs;
          this.logger.info('update deferred', { deploymentId, componentName: answer.component, recheckAfterMs, message: answer.message });
        }
      }
      if (outcome === 'timeout') this.logger.warn('not every component answered the pre-update event in time', { deploymentId, timeoutMs });
      if (recheckAfterMs <= 0) return;
      await new Promise((r) => setTimeout(r, recheckAfterMs));
    }
  }

  /** postUpdateEvent to every subscriber (UpdateSystemPolicyService.runUpdateActions). */
  sendPostUpdate(deploymentId: string): void {
    for (const emitters of this.subscribers.values()) for (const emit of emitters) emit({ postUpdateEvent: { deploymentId } });
  }

  private subscribe(context: CallContext): unknown {
    const component = context.principal;
    if (!this.isComponent(component)) throw new IpcError(RESOURCE_NOT_FOUND, 'Component with given name not found currently in Greengrass');
    const emit = (event: unknown) => context.emit(event);
    const set = this.subscribers.get(component) ?? new Set();
    set.add(emit);
    this.subscribers.set(component, set);
    context.onClose(() => {
      set.delete(emit);
      if (set.size === 0 && this.subscribers.get(component) === set) this.subscribers.delete(component);
    });
    return {};
  }

  /** DeferComponentUpdate (LifecycleIPCEventStreamAgent.deferComponentUpdate). */
  private defer({ principal, request }: CallContext): unknown {
    if (!this.subscribers.has(principal)) throw new IpcError(INVALID_ARGUMENTS, 'Component is not subscribed to component update events');
    if (typeof request.deploymentId !== 'string') throw new IpcError(INVALID_ARGUMENTS, 'Cannot defer the update, the deployment ID provided was null');
    const key = pendingKey(principal, request.deploymentId);
    const answer = this.pending.get(key);
    if (!answer) throw new IpcError(SERVICE_ERROR, 'Time limit to respond to PreComponentUpdateEvent exceeded');
    this.pending.delete(key);
    const recheckAfterMs = typeof request.recheckAfterMs === 'number' ? request.recheckAfterMs : undefined;
    // A null recheckAfterMs is logged and ignored by the nucleus ("Deferral request contains null value").
    if (recheckAfterMs === undefined) this.logger.warn('deferral without recheckAfterMs; ignored', { componentName: principal });
    answer({ recheckAfterMs, message: typeof request.message === 'string' ? request.message : undefined });
    return {};
  }
}

function pendingKey(component: string, deploymentId: string): string {
  return `${component}\u0000${deploymentId}`;
}

/**
 * Local deployments: the Greengrass CLI's IPC operations (CLIEventStreamAgent) in front of one
 * queue that runs one deployment at a time (DeploymentService).
 */
export class DeploymentManager {
  private readonly records = new Map<string, DeploymentRecord>();
  private readonly done = new Map<string, Promise<DeploymentRecord>>();
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly host: DeploymentHost,
    private readonly configuration: ConfigurationService,
    private readonly updates: ComponentUpdateService,
    private readonly options: DeploymentOptions,
  ) {}

  operations(): Record<string, OperationHandler> {
    return {
      'aws.greengrass#CreateLocalDeployment': (c) => this.createLocalDeployment(c),
      'aws.greengrass#GetLocalDeploymentStatus': (c) => this.getLocalDeploymentStatus(c),
      'aws.greengrass#ListLocalDeployments': (c) => this.listLocalDeployments(c),
    };
  }

  /** Queues a deployment; returns its id at once, as CreateLocalDeployment does. */
  create(request: LocalDeploymentRequest): string {
    const record: DeploymentRecord = { deploymentId: randomUUID(), status: 'QUEUED', createdOn: Date.now(), request };
    this.records.set(record.deploymentId, record);
    const finished = this.queue.then(() => this.run(record));
    this.queue = finished.catch(() => undefined);
    this.done.set(record.deploymentId, finished);
    this.options.logger.info('local deployment queued', { deploymentId: record.deploymentId });
    return record.deploymentId;
  }

  /** Resolves with the record once the deployment has finished. */
  whenFinished(deploymentId: string): Promise<DeploymentRecord> | undefined {
    return this.done.get(deploymentId);
  }

  get(deploymentId: string): DeploymentRecord | undefined {
    return this.records.get(deploymentId);
  }

  list(): DeploymentRecord[] {
    return [...this.records.values()];
  }

  private async run(record: DeploymentRecord): Promise<DeploymentRecord> {
    const { deploymentId } = record;
    const logger = this.options.logger;
    record.status = 'IN_PROGRESS';
    logger.info('local deployment started', { deploymentId });
    const timestamp = record.createdOn;
    let plan: DeploymentPlan;
    try {
      plan = this.host.plan(deploymentId, record.request, timestamp);
    } catch (error) {
      return this.finish(record, 'FAILED_NO_STATE_CHANGE', error);
    }
    const notify = this.options.updatePolicy === 'NOTIFY_COMPONENTS';
    try {
      if (notify) await this.updates.notifyAndWait(deploymentId, this.options.updatePolicyTimeoutMs);
      try {
        await this.validate(plan);
      } catch (error) {
        return this.finish(record, 'FAILED_NO_STATE_CHANGE', error);
      }
      const applied = this.host.apply(plan);
      try {
        await this.host.waitForComponents(applied.activation, this.options.settleMs);
      } catch (failure) {
        const policy = record.request.failureHandlingPolicy ?? this.options.failureHandlingPolicy;
        logger.warn('deployment failed', { deploymentId, error: errorMessage(failure), failureHandlingPolicy: policy });
        if (policy !== 'ROLLBACK') return this.finish(record, 'FAILED_ROLLBACK_NOT_REQUESTED', failure);
        logger.info('rolling back the failed deployment', { deploymentId });
        const rollback = applied.rollback();
        try {
          await this.host.waitForComponents(rollback, this.options.settleMs);
        } catch (rollbackFailure) {
          logger.error('rollback failed', { deploymentId, error: errorMessage(rollbackFailure) });
          return this.finish(record, 'FAILED_UNABLE_TO_ROLLBACK', failure);
        }
        return this.finish(record, 'FAILED_ROLLBACK_COMPLETE', failure);
      }
      await this.host.removeObsolete(plan);
      return this.finish(record, 'SUCCESSFUL');
    } catch (error) {
      return this.finish(record, 'FAILED_NO_STATE_CHANGE', error);
    } finally {
      if (notify) this.updates.sendPostUpdate(deploymentId);
    }
  }

  /**
   * DynamicComponentConfigurationValidator: only components that exist, keep their version (a new
   * version validates its configuration when it starts) and whose configuration will change are
   * asked; only those with a validation subscription are waited for.
   */
  private async validate(plan: DeploymentPlan): Promise<void> {
    const asked: Array<{ name: string; report: Promise<{ status: string; message?: string }> }> = [];
    for (const component of plan.components) {
      if (component.isNew || component.versionChanges) continue;
      const proposed = component.proposed.toJSON();
      if (!willChange(this.host.currentTree(component.name), proposed, plan.timestamp)) continue;
      const report = this.configuration.requestValidation(component.name, plan.deploymentId, proposed, this.options.validationTimeoutMs);
      if (report) asked.push({ name: component.name, report });
    }
    if (asked.length === 0) return;
    try {
      const reports = await Promise.all(asked.map((a) => a.report));
      const rejected = asked.map((a, i) => ({ name: a.name, ...reports[i] })).filter((r) => r.status === 'REJECTED');
      if (rejected.length > 0) {
        const details = rejected.map((r) => ` { name = ${r.name}, message = ${r.message ?? ''} }`).join('');
        throw new DeploymentFailure(`Components reported that their to-be-deployed configuration is invalid${details}`, 'COMPONENT_CONFIGURATION_NOT_VALID');
      }
    } catch (error) {
      if (error instanceof DeploymentFailure) throw error;
      throw new DeploymentFailure(`Error while waiting for validation report for one or more components: ${errorMessage(error)}`, 'COMPONENT_CONFIGURATION_NOT_VALID');
    } finally {
      for (const a of asked) this.configuration.discardValidation(a.name, plan.deploymentId);
    }
  }

  private finish(record: DeploymentRecord, detailed: DetailedDeploymentStatus, failure?: unknown): DeploymentRecord {
    record.detailedStatus = detailed;
    record.status = detailed === 'SUCCESSFUL' ? 'SUCCEEDED' : 'FAILED';
    if (failure !== undefined) {
      record.failureCause = errorMessage(failure);
      record.errorStack = ['DEPLOYMENT_FAILURE', failure instanceof DeploymentFailure ? failure.code : 'COMPONENT_UPDATE_ERROR'];
    }
    // A failed deployment is an outcome the caller reads from its status, not a runtime fault: warn.
    const log = record.status === 'SUCCEEDED' ? this.options.logger.info.bind(this.options.logger) : this.options.logger.warn.bind(this.options.logger);
    log('local deployment finished', { deploymentId: record.deploymentId, status: record.status, detailedStatus: detailed, failureCause: record.failureCause });
    return record;
  }

  private requireCli(principal: string, operation: string): void {
    if (principal !== CLI_PRINCIPAL) throw new AuthorizationError(`Principal ${principal} is not authorized to perform aws.greengrass.ipc.cli:aws.greengrass#${operation}`);
  }

  /** CreateLocalDeployment (CLIEventStreamAgent.CreateLocalDeploymentHandler). */
  private createLocalDeployment({ principal, request }: CallContext): unknown {
    this.requireCli(principal, 'CreateLocalDeployment');
    const parsed = parseDeploymentRequest(request);
    return { deploymentId: this.create(parsed) };
  }

  private getLocalDeploymentStatus({ principal, request }: CallContext): unknown {
    this.requireCli(principal, 'GetLocalDeploymentStatus');
    const id = request.deploymentId;
    if (typeof id !== 'string' || !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) {
      throw new IpcError(INVALID_ARGUMENTS, 'Invalid deploymentId format received. DeploymentId is a UUID');
    }
    const record = this.records.get(id);
    if (!record) throw new IpcError(RESOURCE_NOT_FOUND, 'Cannot find deployment');
    return { deployment: describe(record, true) };
  }

  private listLocalDeployments({ principal }: CallContext): unknown {
    this.requireCli(principal, 'ListLocalDeployments');
    return { localDeployments: this.list().map((r) => describe(r, false)) };
  }
}

/** The SDK's LocalDeployment shape. */
export function describe(record: DeploymentRecord, details: boolean): Record<string, unknown> {
  const result: Record<string, unknown> = { deploymentId: record.deploymentId, status: record.status, createdOn: formatCreatedOn(record.createdOn) };
  if (details && record.detailedStatus) {
    result.deploymentStatusDetails = {
      detailedDeploymentStatus: record.detailedStatus,
      ...(record.errorStack ? { deploymentErrorStack: record.errorStack } : {}),
      ...(record.failureCause ? { deploymentFailureCause: record.failureCause } : {}),
    };
  }
  return result;
}

/** "dd-MM-uuuu HH:mm:ss z" in UTC (CLIEventStreamAgent.LOCAL_DEPLOYMENT_CREATED_ON_FORMATTER). */
export function formatCreatedOn(epochMs: number): string {
  const d = new Date(epochMs);
  const two = (n: number) => String(n).padStart(2, '0');
  return `${two(d.getUTCDate())}-${two(d.getUTCMonth() + 1)}-${d.getUTCFullYear()} ${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} UTC`;
}

/** Checks a CreateLocalDeployment request as it arrives over IPC. */
export function parseDeploymentRequest(request: Record<string, unknown>): LocalDeploymentRequest {
  const result: LocalDeploymentRequest = {};
  if (request.groupName !== undefined) {
    if (typeof request.groupName !== 'string') throw new IpcError(INVALID_ARGUMENTS, 'groupName must be a string');
    if (request.groupName.includes(':')) throw new IpcError(INVALID_ARGUMENTS, 'Thing group name cannot contain colon characters');
    result.groupName = request.groupName;
  }
  if (request.rootComponentVersionsToAdd !== undefined) {
    const add = request.rootComponentVersionsToAdd;
    if (!isPlainObject(add) || Object.values(add).some((v) => typeof v !== 'string')) {
      throw new IpcError(INVALID_ARGUMENTS, 'rootComponentVersionsToAdd must map component names to version strings');
    }
    result.rootComponentVersionsToAdd = add as Record<string, string>;
  }
  if (request.rootComponentsToRemove !== undefined) {
    const remove = request.rootComponentsToRemove;
    if (!Array.isArray(remove) || remove.some((v) => typeof v !== 'string')) throw new IpcError(INVALID_ARGUMENTS, 'rootComponentsToRemove must be a list of component names');
    result.rootComponentsToRemove = remove as string[];
  }
  if (request.componentToConfiguration !== undefined) {
    const configs = request.componentToConfiguration;
    if (!isPlainObject(configs)) throw new IpcError(INVALID_ARGUMENTS, 'componentToConfiguration must map component names to {"MERGE": {...}, "RESET": [...]}');
    const parsed: Record<string, ConfigurationUpdate> = {};
    for (const [name, update] of Object.entries(configs)) {
      if (!isPlainObject(update)) throw new IpcError(INVALID_ARGUMENTS, `componentToConfiguration.${name} must be {"MERGE": {...}, "RESET": [...]}`);
      const { MERGE, RESET, ...rest } = update;
      if (Object.keys(rest).length > 0) throw new IpcError(INVALID_ARGUMENTS, `componentToConfiguration.${name} has unknown keys ${Object.keys(rest).join(', ')}; only MERGE and RESET exist`);
      if (MERGE !== undefined && MERGE !== null && !isPlainObject(MERGE)) throw new IpcError(INVALID_ARGUMENTS, `componentToConfiguration.${name}.MERGE must be an object`);
      if (RESET !== undefined && RESET !== null && (!Array.isArray(RESET) || RESET.some((p) => typeof p !== 'string' || (p !== '' && !p.startsWith('/'))))) {
        throw new IpcError(INVALID_ARGUMENTS, `componentToConfiguration.${name}.RESET must be a list of JSON pointers ("" or starting with "/")`);
      }
      parsed[name] = { MERGE: (MERGE ?? undefined) as Record<string, unknown> | undefined, RESET: (RESET ?? undefined) as string[] | undefined };
    }
    result.componentToConfiguration = parsed;
  }
  for (const [field, shape] of [
    ['recipeDirectoryPath', 'aws.greengrass#InvalidRecipeDirectoryPathError'],
    ['artifactsDirectoryPath', 'aws.greengrass#InvalidArtifactsDirectoryPathError'],
  ] as const) {
    const value = request[field];
    if (value === undefined || value === '') continue;
    if (typeof value !== 'string' || !isDirectory(value)) throw new IpcError(shape, `${field} ${JSON.stringify(value)} is not a directory`);
    result[field] = value;
  }
  if (request.failureHandlingPolicy !== undefined) {
    if (request.failureHandlingPolicy !== 'ROLLBACK' && request.failureHandlingPolicy !== 'DO_NOTHING') {
      throw new IpcError(INVALID_ARGUMENTS, `failureHandlingPolicy must be ROLLBACK or DO_NOTHING, got ${JSON.stringify(request.failureHandlingPolicy)}`);
    }
    result.failureHandlingPolicy = request.failureHandlingPolicy;
  }
  return result;
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
