import type { Logger } from '../components/shared/logger';
import { CLI_PRINCIPAL, INVALID_ARGUMENTS, IpcError, RESOURCE_NOT_FOUND, type CallContext, type OperationHandler } from './ipc-service';

/**
 * A component's configuration as the nucleus keeps it: a tree whose every key carries the time it
 * was last modified (aws-greengrass-nucleus, config/Topic.java, config/Topics.java). The times
 * decide which of two writes wins: a write whose timestamp is older than the key's leaves it alone
 * (Topic.withNewerValue), and a container's time is the newest of its children's
 * (Topics.childChanged). Deployment defaults are written with timestamp 1 so they never overwrite
 * a value that exists (KernelConfigResolver.resolveConfigurationToApply).
 *
 * Known difference: nucleus keys are case-insensitive (CaseInsensitiveString); here they are not.
 */
export type ConfigPath = string[];

interface Leaf {
  kind: 'leaf';
  value: unknown;
  modtime: number;
}

interface Container {
  kind: 'container';
  children: Map<string, ConfigNode>;
  /** Creation time; a container's modtime is its newest child's, or this while it is empty. */
  created: number;
}

type ConfigNode = Leaf | Container;

/** MERGE keeps keys the update does not name; REPLACE removes them (nucleus UpdateBehaviorTree). */
export type UpdateBehavior = 'MERGE' | 'REPLACE';

/** Timestamp the nucleus gives recipe defaults (KernelConfigResolver: "timestamp 1 to denote a default"). */
export const DEFAULT_VALUE_TIMESTAMP = 1;

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function modtimeOf(node: ConfigNode): number {
  if (node.kind === 'leaf') return node.modtime;
  let newest: number | undefined;
  for (const child of node.children.values()) {
    const time = modtimeOf(child);
    if (newest === undefined || time > newest) newest = time;
  }
  return newest ?? node.created;
}

function toPlain(node: ConfigNode): unknown {
  if (node.kind === 'leaf') return cloneValue(node.value);
  const result: Record<string, unknown> = {};
  for (const [key, child] of node.children) result[key] = toPlain(child);
  return result;
}

function cloneValue<T>(value: T): T {
  return value === undefined ? value : (JSON.parse(JSON.stringify(value)) as T);
}

function cloneNode(node: ConfigNode): ConfigNode {
  if (node.kind === 'leaf') return { kind: 'leaf', value: cloneValue(node.value), modtime: node.modtime };
  return { kind: 'container', created: node.created, children: new Map([...node.children].map(([k, v]) => [k, cloneNode(v)])) };
}

function deepEqual(a: unknown, b: unknown): boolean {
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (isPlainObject(value)) return Object.fromEntries(Object.keys(value).sort().map((k) => [k, canonical(value[k])]));
  return value;
}

/** A snapshot of a tree with its timestamps, for rollback (nucleus: DeploymentActivator.takeConfigSnapshot). */
export interface ConfigSnapshot {
  readonly root: unknown;
}

export class ConfigTree {
  private root: Container;

  constructor(initial: Record<string, unknown> = {}, timestamp = Date.now()) {
    this.root = { kind: 'container', children: new Map(), created: timestamp };
    this.update([], initial, 'MERGE', timestamp, []);
  }

  toJSON(): Record<string, unknown> {
    return toPlain(this.root) as Record<string, unknown>;
  }

  /** The value at a path (a copy), or undefined when the path does not exist. */
  get(path: ConfigPath): unknown {
    const node = this.find(path);
    return node === undefined ? undefined : toPlain(node);
  }

  has(path: ConfigPath): boolean {
    return this.find(path) !== undefined;
  }

  isLeaf(path: ConfigPath): boolean {
    return this.find(path)?.kind === 'leaf';
  }

  /** Modification time of the node at a path: a leaf's own, a container's newest child's. */
  modtime(path: ConfigPath = []): number | undefined {
    const node = this.find(path);
    return node === undefined ? undefined : modtimeOf(node);
  }

  /**
   * Writes `map` into the container at `path` (created when missing, replacing a leaf that is in
   * the way, as Topics.updateChild does). Each leaf takes the value only if `timestamp` is not
   * older than the leaf's time (Topic.withNewerValue). Returns nothing; every changed, added or
   * removed leaf and every removed container is appended to `changes`.
   */
  update(path: ConfigPath, map: Record<string, unknown>, behavior: UpdateBehavior, timestamp: number, changes: ConfigPath[]): void {
    const container = this.ensureContainer(path, timestamp, changes);
    this.updateContainer(container, path, map, behavior, timestamp, changes);
  }

  /** Removes the node at a path (RESET without a default). Returns whether something was removed. */
  remove(path: ConfigPath, changes: ConfigPath[]): boolean {
    if (path.length === 0) {
      if (this.root.children.size === 0) return false;
      for (const key of this.root.children.keys()) changes.push([key]);
      this.root = { kind: 'container', children: new Map(), created: Date.now() };
      return true;
    }
    const parent = this.find(path.slice(0, -1));
    if (parent?.kind !== 'container' || !parent.children.has(path[path.length - 1])) return false;
    parent.children.delete(path[path.length - 1]);
    changes.push(path);
    return true;
  }

  snapshot(): ConfigSnapshot {
    return { root: cloneNode(this.root) };
  }

  /** Puts a snapshot back, with its own timestamps (nucleus rollback: "the timestamp from the snapshot will be used"). */
  restore(snapshot: ConfigSnapshot, changes: ConfigPath[]): void {
    const restored = cloneNode(snapshot.root as ConfigNode) as Container;
    diffNodes(this.root, restored, [], changes);
    this.root = restored;
  }

  private find(path: ConfigPath): ConfigNode | undefined {
    let node: ConfigNode = this.root;
    for (const key of path) {
      if (node.kind !== 'container') return undefined;
      const next = node.children.get(key);
      if (next === undefined) return undefined;
      node = next;
    }
    return node;
  }

  private ensureContainer(path: ConfigPath, timestamp: number, changes: ConfigPath[]): Container {
    let node: Container = this.root;
    path.forEach((key, index) => {
      const existing = node.children.get(key);
      if (existing?.kind === 'container') {
        node = existing;
        return;
      }
      if (existing) changes.push(path.slice(0, index + 1));
      const created: Container = { kind: 'container', children: new Map(), created: timestamp };
      node.children.set(key, created);
      node = created;
    });
    return node;
  }

  private updateContainer(container: Container, path: ConfigPath, map: Record<string, unknown>, behavior: UpdateBehavior, timestamp: number, changes: ConfigPath[]): void {
    for (const [key, value] of Object.entries(map)) {
      const childPath = [...path, key];
      const existing = container.children.get(key);
      if (isPlainObject(value)) {
        let child: Container;
        if (existing?.kind === 'container') {
          child = existing;
        } else {
          if (existing) changes.push(childPath);
          child = { kind: 'container', children: new Map(), created: timestamp };
          container.children.set(key, child);
        }
        this.updateContainer(child, childPath, value, behavior, timestamp, changes);
        continue;
      }
      if (existing?.kind === 'container') {
        container.children.delete(key);
        changes.push(childPath);
      }
      const leaf = container.children.get(key);
      if (leaf === undefined) {
        // A new leaf starts at time 0 (Topics.createLeafChild), so any write sets it.
        container.children.set(key, { kind: 'leaf', value: cloneValue(value), modtime: timestamp });
        changes.push(childPath);
      } else if (leaf.kind === 'leaf') {
        if (timestamp < leaf.modtime) continue; // stale: Topic.withNewerValue keeps the newer value
        if (!deepEqual(leaf.value, value)) {
          leaf.value = cloneValue(value);
          changes.push(childPath);
        }
        leaf.modtime = timestamp;
      }
    }
    if (behavior === 'REPLACE') {
      for (const key of [...container.children.keys()]) {
        if (!(key in map)) {
          container.children.delete(key);
          changes.push([...path, key]);
        }
      }
    }
  }
}

function diffNodes(before: ConfigNode | undefined, after: ConfigNode | undefined, path: ConfigPath, changes: ConfigPath[]): void {
  if (before === undefined && after === undefined) return;
  if (before?.kind === 'container' && after?.kind === 'container') {
    const keys = new Set([...before.children.keys(), ...after.children.keys()]);
    for (const key of keys) diffNodes(before.children.get(key), after.children.get(key), [...path, key], changes);
    return;
  }
  if (before?.kind === 'leaf' && after?.kind === 'leaf' && deepEqual(before.value, after.value)) return;
  if (path.length > 0) changes.push(path);
}

/** A deployment's configuration update for one component: RESET (JSON pointers), then MERGE. */
export interface ConfigurationUpdate {
  MERGE?: Record<string, unknown>;
  RESET?: string[];
}

/** RFC 6901 pointer to a key path; "" is the whole document. */
export function pointerToPath(pointer: string): ConfigPath {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) throw new Error(`"${pointer}" is not a JSON pointer: it must be "" or start with "/"`);
  return pointer
    .slice(1)
    .split('/')
    .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/**
 * The configuration a deployment proposes for one component, computed as the nucleus computes it
 * (KernelConfigResolver.resolveConfigurationToApply): start from the running configuration with
 * its timestamps, remove every RESET path (a pointer into a list is refused and skipped, as the
 * nucleus logs and skips it; "" resets everything), merge the recipe's DefaultConfiguration at
 * timestamp 1 so it only fills keys that are now missing, then merge MERGE at the deployment's
 * timestamp. A new component starts from nothing, so it gets its defaults plus MERGE.
 */
export function resolveConfiguration(
  running: ConfigTree | undefined,
  defaults: Record<string, unknown>,
  update: ConfigurationUpdate | undefined,
  deploymentTimestamp: number,
  warnings: string[] = [],
): ConfigTree {
  const proposed = new ConfigTree({}, DEFAULT_VALUE_TIMESTAMP);
  if (running) proposed.restore(running.snapshot(), []);
  const ignored: ConfigPath[] = [];
  for (const pointer of update?.RESET ?? []) {
    const path = pointerToPath(pointer);
    if (path.length === 0) {
      proposed.remove([], ignored);
      continue;
    }
    // Jackson's JsonPointer.mayMatchElement: a numeric segment may address a list element, and
    // the nucleus refuses those (KernelConfigResolver.pointsToArrayElement). "You can reset only
    // entire lists" (developer guide, "Update component configurations").
    if (path.some((part) => /^(0|[1-9][0-9]{0,9})$/.test(part))) {
      warnings.push(`RESET ${pointer} may point into a list; only whole lists can be reset, so it was skipped`);
      continue;
    }
    proposed.remove(path, ignored);
  }
  proposed.update([], defaults, 'MERGE', DEFAULT_VALUE_TIMESTAMP, ignored);
  if (update?.MERGE) proposed.update([], update.MERGE, 'MERGE', deploymentTimestamp, ignored);
  return proposed;
}

/**
 * Whether applying `proposed` at `timestamp` changes `current`
 * (DynamicComponentConfigurationValidator.willNodeChange: newer and not equal).
 */
export function willChange(current: ConfigTree | undefined, proposed: Record<string, unknown>, timestamp: number): boolean {
  if (!current) return true;
  return timestamp > (current.modtime() ?? 0) && !deepEqual(current.toJSON(), proposed);
}

/** What the configuration IPC service needs from the runtime. */
export interface ConfigurationHost {
  /** The live configuration tree of a component, or undefined for an unknown name. */
  tree(component: string): ConfigTree | undefined;
}

export interface ValidityReport {
  status: 'ACCEPTED' | 'REJECTED';
  message?: string;
  deploymentId: string;
}

type ValidationEmitter = (deploymentId: string, configuration: Record<string, unknown>) => void;

interface ConfigListener {
  component: string;
  path: ConfigPath;
  active: boolean;
  emit: (event: unknown) => void;
}

/**
 * The configuration IPC operations (nucleus: ConfigStoreIPCEventStreamAgent). None of them needs
 * an accessControl policy. GetConfiguration is served by ipc-service.ts, from the same tree.
 */
export class ConfigurationService {
  private readonly listeners = new Set<ConfigListener>();
  private readonly validators = new Map<string, ValidationEmitter>();
  private readonly pendingReports = new Map<string, (report: ValidityReport) => void>();

  constructor(
    private readonly host: ConfigurationHost,
    private readonly logger: Logger,
  ) {}

  operations(): Record<string, OperationHandler> {
    return {
      'aws.greengrass#UpdateConfiguration': (c) => this.updateConfiguration(c),
      'aws.greengrass#SubscribeToConfigurationUpdate': (c) => this.subscribeToConfigurationUpdate(c),
      'aws.greengrass#SubscribeToValidateConfigurationUpdates': (c) => this.subscribeToValidateConfigurationUpdates(c),
      'aws.greengrass#SendConfigurationValidityReport': (c) => this.sendConfigurationValidityReport(c),
    };
  }

  /**
   * Tells every SubscribeToConfigurationUpdate stream at or above a changed path. The event's
   * keyPath is the changed node's path inside the component's configuration, usable as is for
   * GetConfiguration (ConfigStoreIPCEventStreamAgent.handleConfigNodeUpdate).
   */
  notify(component: string, changes: ConfigPath[]): void {
    const seen = new Set<string>();
    for (const path of changes) {
      const key = JSON.stringify(path);
      if (seen.has(key)) continue;
      seen.add(key);
      for (const listener of this.listeners) {
        if (listener.component !== component || !listener.active) continue;
        if (!startsWith(path, listener.path)) continue;
        listener.emit({ configurationUpdateEvent: { componentName: component, keyPath: path } });
      }
    }
  }

  hasValidator(component: string): boolean {
    return this.validators.has(component);
  }

  /**
   * Sends a component its proposed configuration and waits for its report
   * (ConfigStoreIPCEventStreamAgent.validateConfiguration). Resolves undefined when the component
   * has no validation subscription, and rejects after `timeoutMs` without a report.
   */
  requestValidation(component: string, deploymentId: string, configuration: Record<string, unknown>, timeoutMs: number): Promise<ValidityReport> | undefined {
    const emitter = this.validators.get(component);
    if (!emitter) return undefined;
    const key = reportKey(component, deploymentId);
    return new Promise<ValidityReport>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pendingReports.delete(key);
        reject(new Error(`${component} sent no configuration validity report within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      this.pendingReports.set(key, (report) => {
        clearTimeout(timer);
        resolve(report);
      });
      emitter(deploymentId, configuration);
    });
  }

  /** Drops a deployment's outstanding requests (DynamicComponentConfigurationValidator: discardValidationReportTracker). */
  discardValidation(component: string, deploymentId: string): void {
    this.pendingReports.delete(reportKey(component, deploymentId));
  }

  private ownComponent(principal: string): string {
    if (principal === CLI_PRINCIPAL || !this.host.tree(principal)) throw new IpcError(INVALID_ARGUMENTS, `Component config not found for component ${principal}`);
    return principal;
  }

  /**
   * UpdateConfiguration (ConfigStoreIPCEventStreamAgent.UpdateConfigurationOperationHandler):
   * own configuration only; `timestamp` and `valueToMerge` are required; `accessControl` cannot be
   * touched. `valueToMerge` is merged into the node at `keyPath`. A missing node is created and
   * written at the current time; a leaf at `keyPath` is replaced by the object (as the nucleus
   * does, though the guide says keyPath must name a container). Keys whose timestamp is newer than
   * the request keep their values, and if the node at keyPath is then newer than the request the
   * call fails with FailedUpdateConditionCheckError; the older keys of that same request have
   * been written by then, as on the nucleus.
   */
  private updateConfiguration({ principal, request }: CallContext): unknown {
    const component = this.ownComponent(principal);
    if (typeof request.timestamp !== 'number') throw new IpcError(INVALID_ARGUMENTS, 'Timestamp is required');
    if (!isPlainObject(request.valueToMerge)) throw new IpcError(INVALID_ARGUMENTS, 'ValueToMerge is required');
    const keyPath = Array.isArray(request.keyPath) ? request.keyPath.map(String) : [];
    const value = request.valueToMerge;
    const restricted = keyPath.length === 0 ? Object.keys(value).includes('accessControl') : keyPath[0] === 'accessControl';
    if (restricted) throw new IpcError(INVALID_ARGUMENTS, 'Config update is not allowed for following fields [accessControl]');
    const tree = this.host.tree(component)!;
    // The SDK sends the timestamp as seconds since the epoch, with a fraction.
    let updateTime = Math.round(request.timestamp * 1000);
    const changes: ConfigPath[] = [];
    if (!tree.has(keyPath)) {
      // "Newly created node uses the current timestamp."
      updateTime = Date.now();
      tree.update(keyPath, value, 'MERGE', updateTime, changes);
    } else if (tree.isLeaf(keyPath)) {
      tree.update(keyPath.slice(0, -1), { [keyPath[keyPath.length - 1]]: value }, 'MERGE', updateTime, changes);
    } else {
      tree.update(keyPath, value, 'MERGE', updateTime, changes);
    }
    this.notify(component, changes);
    if (updateTime < (tree.modtime(keyPath) ?? 0)) {
      throw new IpcError('aws.greengrass#FailedUpdateConditionCheckError', "Proposed timestamp is older than the config's latest modified timestamp");
    }
    return {};
  }

  /**
   * SubscribeToConfigurationUpdate: the node at keyPath (default: the whole configuration) of
   * `componentName` (default: the caller) must exist, else ResourceNotFoundError "Key not found".
   * Any change at or below it sends `{configurationUpdateEvent: {componentName, keyPath}}`.
   */
  private subscribeToConfigurationUpdate(context: CallContext): unknown {
    const { principal, request } = context;
    const component = typeof request.componentName === 'string' && request.componentName ? request.componentName : principal;
    const tree = this.host.tree(component);
    const keyPath = Array.isArray(request.keyPath) ? request.keyPath.map(String) : [];
    if (!tree || !tree.has(keyPath)) throw new IpcError(RESOURCE_NOT_FOUND, 'Key not found');
    const listener: ConfigListener = { component, path: keyPath, active: false, emit: (event) => context.emit(event) };
    this.listeners.add(listener);
    context.onClose(() => this.listeners.delete(listener));
    // Events start once the response is on its way ("avoid race conditions when subscribing").
    setImmediate(() => {
      listener.active = true;
    });
    return {};
  }

  /**
   * SubscribeToValidateConfigurationUpdates: one validator per component; a second subscription
   * from the same component is accepted and ignored (the nucleus keeps the first:
   * computeIfAbsent). Events: `{validateConfigurationUpdateEvent: {configuration, deploymentId}}`.
   */
  private subscribeToValidateConfigurationUpdates(context: CallContext): unknown {
    const component = context.principal;
    if (this.validators.has(component)) return {};
    const emitter: ValidationEmitter = (deploymentId, configuration) => context.emit({ validateConfigurationUpdateEvent: { configuration, deploymentId } });
    this.validators.set(component, emitter);
    context.onClose(() => {
      if (this.validators.get(component) === emitter) this.validators.delete(component);
    });
    return {};
  }

  /** SendConfigurationValidityReport: answers the caller's outstanding request for that deployment. */
  private sendConfigurationValidityReport({ principal, request }: CallContext): unknown {
    const report = request.configurationValidityReport as Partial<ValidityReport> | undefined;
    if (!report || typeof report.deploymentId !== 'string') {
      throw new IpcError(INVALID_ARGUMENTS, 'Cannot accept configuration validity report, the deployment ID provided was null');
    }
    if (report.status !== 'ACCEPTED' && report.status !== 'REJECTED') {
      throw new IpcError(INVALID_ARGUMENTS, `configurationValidityReport.status must be ACCEPTED or REJECTED, got ${JSON.stringify(report.status)}`);
    }
    const key = reportKey(principal, report.deploymentId);
    const resolve = this.pendingReports.get(key);
    if (!resolve) throw new IpcError(INVALID_ARGUMENTS, 'Validation request either timed out or was never made');
    this.pendingReports.delete(key);
    this.logger.info('configuration validity report', { componentName: principal, deploymentId: report.deploymentId, status: report.status, message: report.message });
    resolve({ status: report.status, message: report.message, deploymentId: report.deploymentId });
    return {};
  }
}

function reportKey(component: string, deploymentId: string): string {
  return `${component}\u0000${deploymentId}`;
}

function startsWith(path: ConfigPath, prefix: ConfigPath): boolean {
  return prefix.length <= path.length && prefix.every((key, i) => path[i] === key);
}

