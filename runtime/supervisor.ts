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
 * The nucleus marks a component BROKEN when it errors 3 times within errorResetTime, which
 * defaults to 1 hour (nucleus: GenericExternalService; developer guide, nucleus configuration).
 */
export const MAX_ERRORS_BEFORE_BROKEN = 3;
export const DEFAULT_ERROR_RESET_TIME_MS = 60 * 60 * 1000;

export interface SupervisorOptions {
  name: string;
  lifecycle: Lifecycle;
  workPath: string;
  logFile: string;
  /** Environment for every step: IPC socket, SVCUID, thing name, plus interpolated Setenv. */
  environment: () => Record<string, string>;
  /** Recipe variable interpolation for scripts and Setenv values. */
  interpolate: (text: string) => string;
  errorResetTimeMs?: number;
  /** Pause before a restart after an error; the nucleus restarts at once, tests may slow it. */
  restartDelayMs?: number;
  logger: Logger;
  onStateChange: (name: string, state: ComponentState) => void;
}

export class ComponentSupervisor {
  state: ComponentState = 'NEW';
  pid: number | undefined;
  restarts = 0;
  private errorTimes: number[] = [];
  private runProcess: ChildProcess | undefined;
  private stopping = false;
  private installed = false;
  private readonly log: WriteStream;
  private restartTimer: NodeJS.Timeout | undefined;
  private runExit: Promise<void> = Promise.resolve();

  constructor(private readonly options: SupervisorOptions) {
    mkdirSync(options.workPath, { recursive: true });
    this.log = createWriteStream(options.logFile, { flags: 'a' });
  }

  get name(): string {
    return this.options.name;
  }

  get errorCount(): number {
    return this.errorTimes.length;
  }

  /** Runs Install once (if any), then Startup or Run. Resolves once the component is STARTING/RUNNING or has failed. */
  async start(): Promise<void> {
    if (this.state === 'BROKEN') return;
    this.stopping = false;
    const privileged = this.privilegeProblem();
    if (privileged) {
      this.options.logger.error('component cannot start', { componentName: this.name, reason: privileged });
      return this.markBroken(privileged);
    }
    if (!this.installed) {
      const install = stepOf(this.options.lifecycle.Install);
      if (install && !this.skipped(install)) {
        const ok = await this.runStep('Install', install, DEFAULT_TIMEOUT_SEC.Install);
        if (!ok) return this.onError('install step failed');
      }
      this.installed = true;
      this.setState('INSTALLED');
    }
    const run = stepOf(this.options.lifecycle.Run);
    const startup = stepOf(this.options.lifecycle.Startup);
    if (startup && !this.skipped(startup)) {
      this.setState('STARTING');
      const ok = await this.runStep('Startup', startup, DEFAULT_TIMEOUT_SEC.Startup);
      if (!ok) return this.onError('startup step failed');
      this.setState('RUNNING');
      return;
    }
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

  /** SIGTERM, the Shutdown step's timeout, then SIGKILL (nucleus: GenericExternalService.shutdown). */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    if (this.state === 'BROKEN') return;
    this.setState('STOPPING');
    const shutdown = stepOf(this.options.lifecycle.Shutdown);
    const timeoutSec = shutdown?.Timeout ?? DEFAULT_TIMEOUT_SEC.Shutdown;
    if (shutdown && !this.skipped(shutdown)) await this.runStep('Shutdown', shutdown, timeoutSec);
    const child = this.runProcess;
    if (child && child.exitCode === null && child.signalCode === null) {
      signalGroup(child, 'SIGTERM');
      const killer = setTimeout(() => {
        this.options.logger.warn('component did not stop in time; killing it', { componentName: this.name, timeoutSec });
        signalGroup(child, 'SIGKILL');
      }, timeoutSec * 1000);
      await this.runExit;
      clearTimeout(killer);
    }
    this.setState('FINISHED');
  }

  /** Restart on request (IPC RestartComponent). */
  async restart(): Promise<void> {
    await this.stop();
    if (this.state !== 'BROKEN') await this.start();
  }

  /** State reported by the component itself over IPC UpdateState. */
  reportState(state: 'RUNNING' | 'ERRORED'): void {
    if (this.state === 'BROKEN' || this.state === 'STOPPING') return;
    this.options.logger.info('component reported its state', { componentName: this.name, state });
    this.setState(state);
  }

  close(): void {
    this.log.end();
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
        this.pid = undefined;
        this.options.logger.info('component process exited', { componentName: this.name, code, signal, stopping: this.stopping });
        if (!this.stopping) {
          if (code === 0) this.setState('FINISHED');
          else this.onError(signal ? `run process killed by ${signal}` : `run process exited with code ${code}`);
        }
        resolve();
      });
    });
  }

  private onError(reason: string): void {
    const now = Date.now();
    const resetMs = this.options.errorResetTimeMs ?? DEFAULT_ERROR_RESET_TIME_MS;
    this.errorTimes = [...this.errorTimes.filter((t) => now - t < resetMs), now];
    this.setState('ERRORED');
    this.options.logger.warn('component errored', { componentName: this.name, reason, errorsWithinResetTime: this.errorTimes.length });
    if (this.errorTimes.length >= MAX_ERRORS_BEFORE_BROKEN) {
      return this.markBroken(`${this.errorTimes.length} errors within ${resetMs / 1000} s (last: ${reason})`);
    }
    if (this.stopping) return;
    const recover = stepOf(this.options.lifecycle.Recover);
    this.restartTimer = setTimeout(async () => {
      if (this.stopping) return;
      if (recover && !this.skipped(recover)) await this.runStep('Recover', recover, DEFAULT_TIMEOUT_SEC.Recover);
      this.restarts += 1;
      await this.start().catch((error) => this.options.logger.error('restart failed', { componentName: this.name, error: errorMessage(error) }));
    }, this.options.restartDelayMs ?? 0);
  }

  private markBroken(reason: string): void {
    this.options.logger.error('component is BROKEN; it stays stopped until redeployed', { componentName: this.name, reason });
    this.setState('BROKEN');
  }

  private setState(state: ComponentState): void {
    if (this.state === state) return;
    this.state = state;
    this.options.onStateChange(this.name, state);
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
    const env: Record<string, string> = {
      ...(process.env as Record<string, string>),
      ...this.options.environment(),
      ...this.setenv(this.options.lifecycle.Setenv),
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

  private privilegeProblem(): string | undefined {
    const steps = ['Install', 'Startup', 'Run', 'Shutdown', 'Recover'] as const;
    const needs = steps.filter((s) => stepOf(this.options.lifecycle[s])?.RequiresPrivilege);
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
