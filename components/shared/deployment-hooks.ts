import type { GreengrassIpc } from './ipc';
import { describeIpcError } from './ipc';
import type { Logger } from './logger';
import { errorMessage } from './logger';
import { compileValidator, type Validator } from './validation';

/**
 * What every component does around deployments (the brief: "Configuration ... is validated (ajv)
 * at start and on every deployment ... and applies live where that makes sense"; "OTA updates: a
 * component whose update would lose or duplicate work defers it for a bounded time"):
 * - SubscribeToValidateConfigurationUpdates: each proposed configuration is checked with the
 *   component's own schema and answered with SendConfigurationValidityReport, naming every
 *   violation, so an invalid deployment fails before anything changes;
 * - SubscribeToConfigurationUpdate: a change that landed is re-read, re-checked and applied live;
 * - SubscribeToComponentUpdates: before an update the component may defer it (DeferComponentUpdate
 *   with recheckAfterMs) while it has work in flight, never longer than maxDeferMs in all. It always
 *   answers: the nucleus waits for every subscriber's DeferComponentUpdate, up to the update timeout,
 *   and recheckAfterMs 0 is how a component says it is ready (UpdateSystemPolicyService.getTimeToReCheck).
 */
/** How long a component asks to postpone an update now (0: go ahead), and why. */
export interface UpdateDeferral {
  ms: number;
  reason: string;
}

export const NO_DEFERRAL: UpdateDeferral = { ms: 0, reason: '' };

export interface LiveConfigurable<C> {
  /** Applies a new, valid configuration without a restart. */
  applyConfiguration?(config: C): void | Promise<void>;
  deferUpdate?(): Promise<UpdateDeferral> | UpdateDeferral;
}

/** Longest total deferral of one deployment: the nucleus's own update timeout is 60 s by default. */
export const MAX_TOTAL_DEFER_MS = 45_000;

/**
 * Why Node would refuse this nodeOptions as NODE_OPTIONS, or undefined when it would not (or the
 * key is absent). Checked against this Node's own list of the flags NODE_OPTIONS allows, without
 * running anything: a refused flag would stop the component at its next start (exit 9, BROKEN).
 * A word that is not a flag is taken as the value of the flag before it ("-r ./x.js").
 */
export function nodeOptionsProblem(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') return `must be a string of Node options, got ${JSON.stringify(value)}`;
  for (const word of value.trim().split(/\s+/).filter((w) => w !== '')) {
    if (!word.startsWith('-')) continue;
    if (!process.allowedNodeEnvironmentFlags.has(word)) return `"${word}" is not allowed in NODE_OPTIONS (Node ${process.version})`;
  }
  return undefined;
}

/**
 * The component's own settings: without the keys the nucleus owns (accessControl) and those the
 * recipe's lifecycle reads rather than the component (nodeOptions, its process's NODE_OPTIONS).
 */
export function componentSettings(raw: Record<string, unknown>): Record<string, unknown> {
  const { accessControl: _accessControl, nodeOptions: _nodeOptions, ...settings } = raw;
  return settings;
}

export interface DeploymentHooksOptions<C> {
  ipc: GreengrassIpc;
  logger: Logger;
  schema: object;
  current: () => C;
  onValidConfiguration: (config: C) => Promise<void>;
  component: LiveConfigurable<C>;
  maxTotalDeferMs?: number;
}

export class DeploymentHooks<C> {
  private readonly validate: Validator<C>;
  private readonly deferredByDeployment = new Map<string, number>();
  private applying: Promise<void> = Promise.resolve();
  private reapplyTimer?: NodeJS.Timeout;
  readonly metrics = { validationsAccepted: 0, validationsRejected: 0, liveReconfigurations: 0, updatesDeferred: 0 };

  constructor(private readonly options: DeploymentHooksOptions<C>) {
    this.validate = compileValidator<C>(options.schema);
  }

  /**
   * SubscribeToComponentUpdates. Components call it before they open their store: the nucleus only
   * asks subscribers, so a component that subscribed late could be restarted in the middle of a
   * schema migration without being asked.
   */
  async watchUpdates(): Promise<void> {
    const { ipc, logger } = this.options;
    await ipc.subscribeToComponentUpdates((event) => {
      if (event.kind === 'pre') void this.onPreUpdate(event.deploymentId);
      else logger.info('component update finished', { deploymentId: event.deploymentId });
    });
  }

  /** SubscribeToValidateConfigurationUpdates and SubscribeToConfigurationUpdate, once the component runs. */
  async watchConfiguration(): Promise<void> {
    const { ipc } = this.options;
    await ipc.subscribeToValidateConfigurationUpdates((configuration, deploymentId) => void this.onValidate(configuration, deploymentId));
    await ipc.subscribeToConfigurationUpdate([], () => this.scheduleReapply());
  }

  /**
   * Checks a proposed configuration; structuredClone keeps ajv's defaults out of the caller's object.
   * nodeOptions is not the component's, but a value Node would refuse is rejected here, before the
   * deployment restarts anything, rather than found when the component cannot start.
   */
  check(configuration: Record<string, unknown>): { ok: true; value: C } | { ok: false; reason: string } {
    const nodeOptions = nodeOptionsProblem(configuration.nodeOptions);
    if (nodeOptions) return { ok: false, reason: `nodeOptions ${nodeOptions}` };
    return this.validate(structuredClone(componentSettings(configuration)));
  }

  private async onValidate(configuration: Record<string, unknown>, deploymentId: string): Promise<void> {
    const checked = this.check(configuration);
    const { ipc, logger } = this.options;
    if (checked.ok) this.metrics.validationsAccepted += 1;
    else {
      this.metrics.validationsRejected += 1;
      logger.error('deployment rejected: invalid configuration', { deploymentId, reason: checked.reason });
    }
    try {
      await ipc.sendConfigurationValidityReport(deploymentId, checked.ok ? 'ACCEPTED' : 'REJECTED', checked.ok ? undefined : `invalid configuration: ${checked.reason}`);
    } catch (error) {
      logger.warn('could not send the configuration validity report', { deploymentId, error: describeIpcError(error) });
    }
  }

  /** Several keys of one deployment change at once; their events are applied as one change. */
  private scheduleReapply(): void {
    if (this.reapplyTimer) clearTimeout(this.reapplyTimer);
    this.reapplyTimer = setTimeout(() => {
      this.applying = this.applying.then(() => this.reapply());
    }, 100);
  }

  private async reapply(): Promise<void> {
    const { ipc, logger } = this.options;
    try {
      const raw = await ipc.getConfiguration([]);
      const checked = this.check(raw);
      if (!checked.ok) {
        // Validation should have stopped it; keeping the running configuration is the safe side.
        logger.error('configuration change is invalid; keeping the running configuration', { reason: checked.reason });
        return;
      }
      if (JSON.stringify(checked.value) === JSON.stringify(this.options.current())) return;
      await this.options.onValidConfiguration(checked.value);
      await this.options.component.applyConfiguration?.(checked.value);
      this.metrics.liveReconfigurations += 1;
      logger.info('configuration applied live', { config: checked.value });
    } catch (error) {
      logger.error('could not apply the configuration change', { error: errorMessage(error) });
    }
  }

  private async onPreUpdate(deploymentId: string): Promise<void> {
    const { ipc, logger, component } = this.options;
    const maxTotal = this.options.maxTotalDeferMs ?? MAX_TOTAL_DEFER_MS;
    const deferred = this.deferredByDeployment.get(deploymentId) ?? 0;
    let wanted = NO_DEFERRAL;
    try {
      wanted = (await component.deferUpdate?.()) ?? wanted;
    } catch (error) {
      // Not knowing is no reason to hold a deployment: answer "ready" rather than make it wait 60 s.
      logger.warn('could not tell whether work is in flight; not deferring', { deploymentId, error: errorMessage(error) });
    }
    let ms = 0;
    if (wanted.ms > 0 && deferred >= maxTotal) {
      logger.warn('update no longer deferred: the deferral budget is spent', { deploymentId, deferredMs: deferred, reason: wanted.reason });
    } else if (wanted.ms > 0) {
      ms = Math.min(wanted.ms, maxTotal - deferred);
      this.deferredByDeployment.set(deploymentId, deferred + ms);
      this.metrics.updatesDeferred += 1;
      logger.info('deferring component update', { deploymentId, recheckAfterMs: ms, reason: wanted.reason });
    }
    try {
      await ipc.deferComponentUpdate(deploymentId, ms, ms > 0 ? wanted.reason : 'ready');
    } catch (error) {
      logger.warn('could not defer the update', { deploymentId, error: describeIpcError(error) });
    }
  }
}
