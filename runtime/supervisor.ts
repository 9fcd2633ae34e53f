import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, type WriteStream } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { Logger } from '../components/shared/logger';
import { errorMessage } from '../components/shared/logger';
import { stepOf, type Lifecycle, type LifecycleStep } from './recipe';

/** Component states as the nucleus reports them (developer guide, "Component lifecycle states"). */
export type ComponentState = 'NEW' | 'INSTALLED' | 'STARTING' | 'RUNNING' | 'STOPPING' | 'FINISHED' | 'ERRORED' | 'BROKEN';

/**
 * Step timeouts in seconds when a recipe gives none (recipe reference, "Lifecycle"):
 * install 120, startup 120, shutdown 15, recover 60; run has none.
 */
export const DEFAULT_TIMEOUT_SEC = { Install: 120, Startup: 120, Shutdown: 15, Recover: 60 } as const;

/**
 * The nucleus marks a component BROKEN on its 3rd error from the same state (NEW, STARTING or
 * RUNNING) unless errorResetTime, default 1 hour, passed since the previous one
 * (aws-greengrass-nucleus, Lifecycle.java: MAXIMUM_CONTINUAL_ERROR, DEFAULT_ERROR_RESET_TIME_IN_SEC,
 * STATES_TO_ERRORED, internalReportState).
 */
export const MAX_ERRORS_BEFORE_BROKEN = 3;
export const DEFAULT_ERROR_RESET_TIME_MS = 60 * 60 * 1000;
const STATES_COUNTING_ERRORS: ReadonlySet<ComponentState> = new Set(['NEW', 'STARTING', 'RUNNING']);

/**
 * States a component may report over IPC UpdateState, by the state it is in
 * (Lifecycle.ALLOWED_STATE_TRANSITION_FOR_REPORTING). Anything else is logged and ignored.
 */
const REPORTABLE: Partial<Record<ComponentState, ReadonlyArray<'RUNNING' | 'ERRORED'>>> = {
  NEW: ['ERRORED'],
  STARTING: ['RUNNING', 'ERRORED'],
  RUNNING: ['ERRORED'],
  STOPPING: ['ERRORED'],
};

export interface SupervisorOptions {
  name: string;
  /** The lifecycle to run; read at every start, so a deployment can swap it. */
  lifecycle: () => Lifecycle;
  workPath: string;
  logFile: string;
  /** Environment for every step: IPC socket, SVCUID, thing name, plus interpolated Setenv. */
  environment: () => Record<string, string>;
  /** Recipe variable interpolation for scripts and Setenv values. */
  interpolate: (text: string) => string;
  /** Runtime-wide errorResetTime; a recipe's Lifecycle.errorResetTime (seconds) wins. */
  errorResetTimeMs?: number;
  /** Pause before a restart after an error; the nucleus restarts at once, tests may slow it. */
  restartDelayMs?: number;
  /**
   * Resolves true once the HARD dependencies are ready to be depended on, false to give up for
   * now (GreengrassService.waitForDependencyReady runs after install, before STARTING).
   */
  waitForDependencies?: (cancelled: () => boolean) => Promise<boolean>;
  logger: Logger;
  onStateChange: (name: string, state: ComponentState, previous: ComponentState) => void;
}

/**
 * One component's lifecycle. Starts, stops, restarts, reinstalls and error handling run one at
 * a time, in the order they were asked for, as the nucleus's per-service lifecycle thread does.
 */
export class ComponentSupervisor {
  state: ComponentState = 'NEW';
  pid: number | undefined;
  restarts = 0;
  /** Set when a start gave up waiting for a HARD dependency; the runtime starts it again later. */
  awaitingDependencies = false;
  /** When the component last became BROKEN (DeploymentConfigMerger compares it with the merge time). */
  brokenAt: number | undefined;
  /** When the state last changed, on the monotonic clock (performance.now()): a wall-clock step cannot move it. */
  stateChangedMono = performance.now();
  private readonly errorsByState = new Map<ComponentState, number[]>();
  private runProcess: ChildProcess | undefined;
  private stopping = false;
  private stopRequested = false;
  private installed = false;
  private startupErrored = false;
  private readonly log: WriteStream;
  private restartTimer: NodeJS.Timeout | undefined;
  private runExit: Promise<void> = Promise.resolve();
  private queue: Promise<void> = Promise.resolve();
  private queuedRestarts = 0;

  constructor(private readonly options: SupervisorOptions) {
    mkdirSync(options.workPath, { recursive: true });
    this.log = createWriteStream(options.logFile, { flags: 'a' });
  }

  get name(): string {
    return this.options.name;
  }

  /** Errors currently counted towards BROKEN, over all states. */
  get errorCount(): number {
    let total = 0;
    for (const times of this.errorsByState.values()) total += times.length;
    return total;
  }

  /** A restart was asked for and has not begun yet. */
  get restartPending(): boolean {
    return this.queuedRestarts > 0;
  }

  /** True while the last start failed in Startup: a STOPPING dependency is then not ready (GreengrassService.dependencyFinishedStarting). */
  get didStartupError(): boolean {
    return this.startupErrored;
  }

  /** Install (once), wait for HARD dependencies, then Startup or Run. Resolves once RUNNING/FINISHED or failed. */
  start(): Promise<void> {
    this.stopRequested = false;
    return this.enqueue(() => this.doStart());
  }

  /** Shutdown step, SIGTERM, SIGKILL after the Shutdown timeout; then FINISHED. */
  stop(): Promise<void> {
    this.stopRequested = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    return this.enqueue(() => this.doStop(true));
  }

  /** RestartComponent, a HARD dependency gone bad, or a lifecycle change: stop, then start again without Install. */
  restart(): Promise<void> {
    this.stopRequested = false;
    this.queuedRestarts += 1;
    return this.enqueue(async () => {
      this.queuedRestarts -= 1;
      if (this.state === 'BROKEN') return;
      await this.doStop(false);
      this.setState(this.installed ? 'INSTALLED' : 'NEW');
      await this.doStart();
    });
  }

  /**
   * A new version, a changed Install step, or a deployment that touches a BROKEN component:
   * stop, forget the install and the error counts, and start from NEW (GenericExternalService:
   * requestReinstall).
   */
  reinstall(): Promise<void> {
    this.stopRequested = false;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    return this.enqueue(async () => {
      await this.doStop(false);
      this.installed = false;
      this.errorsByState.clear();
      this.brokenAt = undefined;
      this.awaitingDependencies = false;
      this.setState('NEW');
      await this.doStart();
    });
  }

  /**
   * A state the component reports over IPC UpdateState. Only the nucleus's allowed transitions
   * count. ERRORED is then an error like a crash: it counts towards BROKEN, Recover runs, the
   * component is stopped and started again (Lifecycle.handleCurrentStateErrored).
   */
  reportState(state: 'RUNNING' | 'ERRORED'): void {
    const allowed = REPORTABLE[this.state] ?? [];
    if (!allowed.includes(state)) {
      // RUNNING reported by a Run-only component that is already RUNNING is the common, harmless case.
      const harmless = state === 'RUNNING' && this.state === 'RUNNING';
      this.options.logger.log(harmless ? 'debug' : 'warn', 'reported state not applicable; ignored as the nucleus ignores it', { componentName: this.name, state, current: this.state });
      return;
    }
    this.options.logger.info('component reported its state', { componentName: this.name, state });
    if (state === 'RUNNING') this.setState('RUNNING');
    else this.onError('the component reported ERRORED over IPC');
  }

  close(): void {
    this.log.end();
  }

  private enqueue(operation: () => Promise<void>): Promise<void> {
    const next = this.queue.then(operation, operation);
    this.queue = next.catch((error) => {
      this.options.logger.error('lifecycle operation failed', { componentName: this.name, error: errorMessage(error) });
    });
    return next;
  }

  private async doStart(): Promise<void> {
    if (this.state === 'BROKEN' || this.stopRequested) return;
    this.stopping = false;
    this.awaitingDependencies = false;
    const lifecycle = this.options.lifecycle();
    const privileged = this.privilegeProblem(lifecycle);
    if (privileged) {
      this.options.logger.error('component cannot start', { componentName: this.name, reason: privileged });
      return this.markBroken(privileged);
    }
    if (!this.installed) {
      if (this.state !== 'NEW') this.setState('NEW');
      const install = stepOf(lifecycle.Install);
      if (install && !this.skipped(install)) {
        const ok = await this.runStep('Install', install, DEFAULT_TIMEOUT_SEC.Install);
        if (!ok) return this.onError('install step failed');
      }
      this.installed = true;
      this.setState('INSTALLED');
    }
    if (this.options.waitForDependencies && !(await this.options.waitForDependencies(() => this.stopRequested))) {
      this.awaitingDependencies = !this.stopRequested;
      return;
    }
    if (this.stopRequested) return;
    const run = stepOf(lifecycle.Run);
    const startup = stepOf(lifecycle.Startup);
    if (startup && !this.skipped(startup)) {
      this.setState('STARTING');
      const ok = await this.runStep('Startup', startup, DEFAULT_TIMEOUT_SEC.Startup);
      if (!ok) {
        this.startupErrored = true;
        return this.onError('startup step failed');
      }
      this.startupErrored = false;
      this.setState('RUNNING');
      return;
    }
    this.startupErrored = false;
    if (!run || this.skipped(run)) {
      // A component with nothing to run (e.g. a pure configuration component) has finished.
      this.setState('FINISHED');
      return;
    }
    this.setState('STARTING');
    this.spawnRun(run);
    // Like the nucleus, a component whose Run process has started is RUNNING.
    this.setState('RUNNING');
  }

  /** `final`: the component stays stopped (FINISHED); otherwise a start follows. */
  private async doStop(final: boolean): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const lifecycle = this.options.lifecycle();
    const shutdown = stepOf(lifecycle.Shutdown);
    const timeoutSec = shutdown?.Timeout ?? DEFAULT_TIMEOUT_SEC.Shutdown;
    if (this.state === 'BROKEN') {
      await this.killRun(timeoutSec);
      return;
    }
    const alive = this.runAlive();
    if (alive || ['STARTING', 'RUNNING', 'ERRORED'].includes(this.state)) {
      this.setState('STOPPING');
      if (shutdown && !this.skipped(shutdown)) await this.runStep('Shutdown', shutdown, timeoutSec);
      await this.killRun(timeoutSec);
    }
    if (final) this.setState('FINISHED');
  }

  private runAlive(): boolean {
    const child = this.runProcess;
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  }

  /** SIGTERM to the Run process group, SIGKILL after `timeoutSec` (GenericExternalService.shutdown). */
  private async killRun(timeoutSec: number): Promise<void> {
    const child = this.runProcess;
    if (!child || !this.runAlive()) return;
    signalGroup(child, 'SIGTERM');
    const killer = setTimeout(() => {
      this.options.logger.warn('component did not stop in time; killing it', { componentName: this.name, timeoutSec });
      signalGroup(child, 'SIGKILL');
    }, timeoutSec * 1000);
    await this.runExit;
    clearTimeout(killer);
  }

  private spawnRun(run: LifecycleStep): void {
    const child = this.spawnScript('Run', run);
    this.runProcess = child;
    this.pid = child.pid;
    let timeout: NodeJS.Timeout | undefined;
    if (run.Timeout) {
      timeout = setTimeout(() => {
        this.options.logger.error('run step exceeded its timeout', { componentName: this.name, timeoutSec: run.Timeout });
        signalGroup(child, 'SIGKILL');
      }, run.Timeout * 1000);
    }
    this.runExit = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        if (timeout) clearTimeout(timeout);
        if (this.runProcess === child) this.pid = undefined;
        this.options.logger.info('component process exited', { componentName: this.name, code, signal, stopping: this.stopping });
        if (!this.stopping && this.runProcess === child && this.state !== 'BROKEN') {
          if (code === 0) this.setState('FINISHED');
          else this.onError(signal ? `run process killed by ${signal}` : `run process exited with code ${code}`);
        }
        resolve();
      });
    });
  }

  private errorResetTimeMs(): number {
    const fromRecipe = this.options.lifecycle().errorResetTime;
    if (typeof fromRecipe === 'number' && fromRecipe > 0) return fromRecipe * 1000;
    return this.options.errorResetTimeMs ?? DEFAULT_ERROR_RESET_TIME_MS;
  }

  /**
   * An error in the current state: count it for that state (the count restarts when the previous
   * error of that state is errorResetTime old), go ERRORED, and either BROKEN on the 3rd, or
   * Recover, stop (Shutdown step, processes) and start again, from NEW if Install failed
   * (Lifecycle.internalReportState, handleCurrentStateErrored).
   */
  private onError(reason: string): void {
    const from = this.state;
    const now = Date.now();
    const resetMs = this.errorResetTimeMs();
    let count = 0;
    if (STATES_COUNTING_ERRORS.has(from)) {
      const times = this.errorsByState.get(from) ?? [];
      if (times.length > 0 && now - times[times.length - 1] >= resetMs) times.length = 0;
      times.push(now);
      this.errorsByState.set(from, times);
      count = times.length;
    }
    this.setState('ERRORED');
    this.options.logger.warn('component errored', { componentName: this.name, reason, state: from, errorsInThatState: count });
    if (count >= MAX_ERRORS_BEFORE_BROKEN) {
      this.markBroken(`${count} errors in state ${from}, each within ${resetMs / 1000} s of the previous (last: ${reason})`);
      void this.enqueue(() => this.killRun(stepOf(this.options.lifecycle().Shutdown)?.Timeout ?? DEFAULT_TIMEOUT_SEC.Shutdown));
      return;
    }
    if (this.stopRequested) return;
    this.restartTimer = setTimeout(() => {
      void this.enqueue(async () => {
        if (this.stopRequested || this.state !== 'ERRORED') return;
        const recover = stepOf(this.options.lifecycle().Recover);
        if (recover && !this.skipped(recover)) await this.runStep('Recover', recover, DEFAULT_TIMEOUT_SEC.Recover);
        // After an install error the nucleus goes straight back to NEW; otherwise it stops first.
        if (from !== 'NEW') await this.doStop(false);
        if (this.stopRequested) return;
        this.setState(from === 'NEW' ? 'NEW' : 'INSTALLED');
        this.restarts += 1;
        await this.doStart();
      });
    }, this.options.restartDelayMs ?? 0);
  }

  private markBroken(reason: string): void {
    this.options.logger.error('component is BROKEN; it stays stopped until a deployment reinstalls it', { componentName: this.name, reason });
    this.brokenAt = Date.now();
    this.setState('BROKEN');
  }

  private setState(state: ComponentState): void {
    const previous = this.state;
    if (previous === state) return;
    // A report other than ERRORED clears the error count of the state being left
    // (Lifecycle.internalReportState: "avoid putting the service to BROKEN because of transient issues").
    if (state !== 'ERRORED') this.errorsByState.delete(previous);
    this.state = state;
    this.stateChangedMono = performance.now();
    this.options.onStateChange(this.name, state, previous);
  }

  private async runStep(stepName: string, step: LifecycleStep, defaultTimeoutSec: number): Promise<boolean> {
    const child = this.spawnScript(stepName, step);
    const timeoutSec = step.Timeout ?? defaultTimeoutSec;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.options.logger.error('lifecycle step timed out', { componentName: this.name, step: stepName, timeoutSec });
        signalGroup(child, 'SIGKILL');
      }, timeoutSec * 1000);
      child.once('exit', (code) => {
        clearTimeout(timer);
        if (code !== 0) this.options.logger.warn('lifecycle step failed', { componentName: this.name, step: stepName, code });
        resolve(code === 0);
      });
    });
  }

  private spawnScript(stepName: string, step: LifecycleStep): ChildProcess {
    const lifecycle = this.options.lifecycle();
    const env: Record<string, string> = {
      ...(process.env as Record<string, string>),
      ...this.options.environment(),
      ...this.setenv(lifecycle.Setenv),
      ...this.setenv(step.Setenv),
    };
    const script = this.options.interpolate(step.Script);
    this.log.write(`${new Date().toISOString()} [runtime] ${stepName}: ${script}\n`);
    // A process group per step, so SIGTERM/SIGKILL reach the script's children too (sh -> node).
    const child = spawn('/bin/sh', ['-c', script], { cwd: this.options.workPath, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.pipe(this.log, { end: false });
    child.stderr?.pipe(this.log, { end: false });
    child.on('error', (error) => this.options.logger.error('could not spawn lifecycle step', { componentName: this.name, step: stepName, error: error.message }));
    return child;
  }

  private setenv(values: Record<string, string> | undefined): Record<string, string> {
    const result: Record<string, string> = {};
    for (const [key, value] of Object.entries(values ?? {})) result[key] = this.options.interpolate(value);
    return result;
  }

  /** Skipif: "onpath <executable>" or "exists <file>" (recipe reference, lifecycle Skipif). */
  private skipped(step: LifecycleStep): boolean {
    if (!step.Skipif) return false;
    const [kind, ...rest] = step.Skipif.trim().split(/\s+/);
    const target = this.options.interpolate(rest.join(' '));
    if (kind === 'exists') return existsSync(target);
    if (kind === 'onpath') return (process.env.PATH ?? '').split(delimiter).some((dir) => existsSync(join(dir, target)));
    this.options.logger.warn('unknown Skipif condition; running the step', { componentName: this.name, skipif: step.Skipif });
    return false;
  }

  private privilegeProblem(lifecycle: Lifecycle): string | undefined {
    const steps = ['Install', 'Startup', 'Run', 'Shutdown', 'Recover'] as const;
    const needs = steps.filter((s) => stepOf(lifecycle[s])?.RequiresPrivilege);
    if (needs.length === 0 || process.getuid?.() === 0) return undefined;
    return `RequiresPrivilege is set on ${needs.join(', ')}, but the local runtime runs as uid ${process.getuid?.()} and cannot run steps as root; run the runtime as root or drop RequiresPrivilege`;
  }
}

function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // The group is already gone.
  }
}
