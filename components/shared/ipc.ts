import { greengrasscoreipc, eventstream_rpc, io } from 'aws-iot-device-sdk-v2';
import type { Logger } from './logger';
import { errorMessage } from './logger';
import { Backoff, sleep } from './backoff';

type Client = greengrasscoreipc.Client;
type Model = typeof greengrasscoreipc.model;
const model: Model = greengrasscoreipc.model;

/**
 * The components' Greengrass IPC connection: the SDK's own client, plus what the brief asks of
 * every component: a failed connect or a lost connection is retried with jittered backoff (never
 * a crash loop), and subscriptions are re-established after a reconnect.
 */
export interface IpcOptions {
  logger: Logger;
  connectBackoffBaseMs?: number;
  connectBackoffMaxMs?: number;
  /** Give up connecting after this long and let the caller exit non-zero (default: never). */
  connectDeadlineMs?: number;
  /** Socket and token; by default from AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT and SVCUID. */
  socketPath?: string;
  authToken?: string;
}

/** An SDK IPC client for an explicit socket and token (the local CLI, tests). */
export function createIpcClient(socketPath: string, authToken: string): Client {
  return greengrasscoreipc.createClient({
    hostName: socketPath,
    port: 0,
    socketOptions: new io.SocketOptions(io.SocketType.STREAM, io.SocketDomain.LOCAL),
    connectTransform: async (options) => {
      options.message.payload = JSON.stringify({ authToken });
      return options.message;
    },
  });
}

interface Subscription {
  describe: string;
  open: (client: Client) => Promise<eventstream_rpc.StreamingOperation<unknown, unknown, unknown, unknown>>;
  operation?: eventstream_rpc.StreamingOperation<unknown, unknown, unknown, unknown>;
}

export type IpcErrorKind = 'unauthorized' | 'service' | 'connection' | 'other';

/**
 * The SDK reports every modelled error as RpcError type "ServiceError" with the payload only, so
 * the nucleus's message text is what tells UnauthorizedError apart ("... is not authorized ...").
 */
export function classifyIpcError(error: unknown): IpcErrorKind {
  const rpc = error as Partial<eventstream_rpc.RpcError> | undefined;
  const message = String(rpc?.serviceError?.message ?? rpc?.description ?? errorMessage(error));
  if (/not authorized/i.test(message)) return 'unauthorized';
  if (rpc?.type === eventstream_rpc.RpcErrorType.ServiceError) return 'service';
  if (rpc?.type === eventstream_rpc.RpcErrorType.ClientStateError || rpc?.type === eventstream_rpc.RpcErrorType.NetworkError) return 'connection';
  return 'other';
}

export function describeIpcError(error: unknown): string {
  const rpc = error as Partial<eventstream_rpc.RpcError> | undefined;
  if (rpc?.serviceError?.message) return String(rpc.serviceError.message);
  return rpc?.description ?? errorMessage(error);
}

/** The least wait before reconnecting after a lost connection; the wait is 1 to 2 times this. */
const RECONNECT_DELAY_MIN_MS = 250;

export class GreengrassIpc {
  private client?: Client;
  private readonly subscriptions: Subscription[] = [];
  private closed = false;
  private reconnecting?: Promise<void>;
  readonly counters = { connects: 0, disconnects: 0, callFailures: 0 };

  private constructor(private readonly options: IpcOptions) {}

  static async connect(options: IpcOptions): Promise<GreengrassIpc> {
    const ipc = new GreengrassIpc(options);
    await ipc.establish();
    return ipc;
  }

  get connected(): boolean {
    return this.client !== undefined && !this.reconnecting;
  }

  async publishToTopic(topic: string, message: unknown): Promise<void> {
    await this.call((c) => c.publishToTopic({ topic, publishMessage: { jsonMessage: { message: message as object } } }));
  }

  async subscribeToTopic(topic: string, onMessage: (message: unknown, topic: string) => void): Promise<void> {
    await this.addSubscription({
      describe: `SubscribeToTopic ${topic}`,
      open: async (client) => {
        const operation = client.subscribeToTopic({ topic });
        operation.on('message', (event) => {
          if (event.jsonMessage) onMessage(event.jsonMessage.message, event.jsonMessage.context?.topic ?? topic);
          else if (event.binaryMessage?.message !== undefined) {
            onMessage(Buffer.from(event.binaryMessage.message as Uint8Array).toString('utf8'), event.binaryMessage.context?.topic ?? topic);
          }
        });
        await operation.activate();
        return operation as never;
      },
    });
  }

  /** QoS 1 by default; a ServiceError here means the nucleus spooler refused it (back-pressure). */
  async publishToIoTCore(topicName: string, payload: Buffer | string, options: { qos?: 0 | 1; retain?: boolean } = {}): Promise<void> {
    const qos = options.qos === 0 ? model.QOS.AT_MOST_ONCE : model.QOS.AT_LEAST_ONCE;
    await this.call((c) => c.publishToIoTCore({ topicName, qos, payload, retain: options.retain }));
  }

  async subscribeToIoTCore(topicName: string, onMessage: (payload: Buffer, topic: string) => void): Promise<void> {
    await this.addSubscription({
      describe: `SubscribeToIoTCore ${topicName}`,
      open: async (client) => {
        const operation = client.subscribeToIoTCore({ topicName, qos: model.QOS.AT_LEAST_ONCE });
        operation.on('message', (event) => {
          const message = event.message;
          if (!message) return;
          onMessage(Buffer.from((message.payload ?? new Uint8Array()) as Uint8Array), message.topicName ?? topicName);
        });
        await operation.activate();
        return operation as never;
      },
    });
  }

  async updateState(state: 'RUNNING' | 'ERRORED'): Promise<void> {
    await this.call((c) => c.updateState({ state: state === 'RUNNING' ? model.ReportedLifecycleState.RUNNING : model.ReportedLifecycleState.ERRORED }));
  }

  async getConfiguration(keyPath: string[] = [], componentName?: string): Promise<Record<string, unknown>> {
    const response = await this.call((c) => c.getConfiguration({ keyPath, componentName }));
    return (response.value ?? {}) as Record<string, unknown>;
  }

  /** Greengrass CLI operations (StopComponent, RestartComponent); only the CLI principal may call them. */
  async stopComponent(componentName: string): Promise<void> {
    const response = await this.call((c) => c.stopComponent({ componentName }));
    if (response.stopStatus !== model.RequestStatus.SUCCEEDED) throw new Error(`StopComponent ${componentName}: ${response.message ?? response.stopStatus}`);
  }

  async restartComponent(componentName: string): Promise<void> {
    const response = await this.call((c) => c.restartComponent({ componentName }));
    if (response.restartStatus !== model.RequestStatus.SUCCEEDED) throw new Error(`RestartComponent ${componentName}: ${response.message ?? response.restartStatus}`);
  }

  /**
   * Local shadows (aws.greengrass.ShadowManager). shadowName "" is the thing's classic shadow.
   * The document, or undefined when the shadow does not exist: the shadow manager answers
   * ResourceNotFoundError "No shadow found" (resourceType "shadow"), and the SDK surfaces only the
   * error's payload, so that is what is matched.
   */
  async getThingShadow(
    thingName: string,
    shadowName = '',
  ): Promise<{ state: { desired?: Record<string, unknown>; reported?: Record<string, unknown>; delta?: Record<string, unknown> }; metadata: Record<string, unknown>; version: number; timestamp: number } | undefined> {
    try {
      const response = await this.call((c) => c.getThingShadow({ thingName, shadowName }));
      return JSON.parse(Buffer.from(response.payload as Uint8Array).toString('utf8'));
    } catch (error) {
      const serviceError = (error as Partial<eventstream_rpc.RpcError> | undefined)?.serviceError as { message?: string; resourceType?: string } | undefined;
      if (serviceError?.resourceType === 'shadow' || /^No shadow found/.test(serviceError?.message ?? '')) return undefined;
      throw error;
    }
  }

  /**
   * Sends a request document {state: {desired?, reported?}, version?, clientToken?} and returns the
   * parsed response {state, metadata, version, timestamp, clientToken?}. A stale version is a
   * ConflictError ("Version conflict ..."), a bad or too large document an InvalidArgumentsError.
   */
  async updateThingShadow(
    thingName: string,
    shadowName: string,
    document: Record<string, unknown>,
  ): Promise<{ state: Record<string, unknown> | null; metadata: Record<string, unknown>; version: number; timestamp: number; clientToken?: string }> {
    const response = await this.call((c) => c.updateThingShadow({ thingName, shadowName, payload: JSON.stringify(document) }));
    return JSON.parse(Buffer.from(response.payload as Uint8Array).toString('utf8'));
  }

  /** Deletes a shadow; its reply payload is empty. A missing shadow is a ResourceNotFoundError. */
  async deleteThingShadow(thingName: string, shadowName = ''): Promise<void> {
    await this.call((c) => c.deleteThingShadow({ thingName, shadowName }));
  }

  /** One page of the thing's named shadow names; pass nextToken back for the next page. */
  async listNamedShadowsForThing(thingName: string, pageSize?: number, nextToken?: string): Promise<{ results: string[]; nextToken?: string; timestamp: Date }> {
    const response = await this.call((c) => c.listNamedShadowsForThing({ thingName, pageSize, nextToken }));
    return { results: response.results ?? [], nextToken: response.nextToken, timestamp: response.timestamp };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const subscription of this.subscriptions) await subscription.operation?.close().catch(() => undefined);
    await this.client?.close().catch(() => undefined);
    this.client = undefined;
  }

  /** One attempt; connection-level failures trigger a background reconnect and are rethrown. */
  private async call<T>(fn: (client: Client) => Promise<T>): Promise<T> {
    if (this.reconnecting) await this.reconnecting;
    if (!this.client) throw new Error('IPC client is closed');
    try {
      return await fn(this.client);
    } catch (error) {
      this.counters.callFailures += 1;
      if (classifyIpcError(error) === 'connection') this.scheduleReconnect('call failed on a broken connection');
      throw error;
    }
  }

  private async addSubscription(subscription: Subscription): Promise<void> {
    // Listed first, so a reconnect while it opens reopens it too; unlisted again if the open fails,
    // so a caller's retry does not leave a second copy to be reopened at every reconnect.
    this.subscriptions.push(subscription);
    try {
      if (this.reconnecting) await this.reconnecting;
      if (!this.client) throw new Error('IPC client is closed');
      subscription.operation = await subscription.open(this.client);
    } catch (error) {
      const index = this.subscriptions.indexOf(subscription);
      if (index >= 0) this.subscriptions.splice(index, 1);
      throw error;
    }
  }

  private async establish(): Promise<void> {
    const backoff = new Backoff(this.options.connectBackoffBaseMs ?? 200, this.options.connectBackoffMaxMs ?? 10_000);
    const started = Date.now();
    for (;;) {
      const { socketPath, authToken } = this.options;
      const client = socketPath && authToken ? createIpcClient(socketPath, authToken) : greengrasscoreipc.createClient();
      try {
        await client.connect();
        client.on('disconnection', (event) => {
          if (this.closed || this.client !== client) return;
          this.counters.disconnects += 1;
          this.options.logger.warn('IPC connection lost; reconnecting', { reason: event?.reason ? errorMessage(event.reason) : undefined });
          this.scheduleReconnect('disconnection');
        });
        this.client = client;
        this.counters.connects += 1;
        for (const subscription of this.subscriptions) subscription.operation = await subscription.open(client);
        if (this.counters.connects > 1) this.options.logger.info('IPC reconnected', { subscriptions: this.subscriptions.length });
        return;
      } catch (error) {
        await client.close().catch(() => undefined);
        const elapsed = Date.now() - started;
        if (this.closed) throw new Error('IPC client closed while connecting');
        if (this.options.connectDeadlineMs !== undefined && elapsed > this.options.connectDeadlineMs) {
          throw new Error(`could not connect to Greengrass IPC within ${this.options.connectDeadlineMs} ms: ${describeIpcError(error)}`);
        }
        const delay = backoff.nextDelayMs();
        this.options.logger.warn('IPC connect failed; retrying', { attempt: backoff.attempts, delayMs: delay, error: describeIpcError(error) });
        await sleep(delay);
      }
    }
  }

  private scheduleReconnect(reason: string): void {
    if (this.closed || this.reconnecting) return;
    const previous = this.client;
    this.client = undefined;
    this.reconnecting = (async () => {
      this.options.logger.info('re-establishing IPC connection', { reason });
      await previous?.close().catch(() => undefined);
      // Not at once: a nucleus that is going down can still accept a connection in the instant
      // before its socket closes, and aws-crt 1.33 aborts the whole process (a fatal assert in
      // event_stream.c) when a connection's shutdown is processed before its setup. Jittered, so
      // the components of a restarted nucleus do not all come back in the same instant either.
      await sleep(RECONNECT_DELAY_MIN_MS + Math.random() * RECONNECT_DELAY_MIN_MS);
      if (this.closed) return;
      await this.establish();
    })()
      .catch((error) => {
        // Closing the client while it reconnects is a deliberate end, not a failure.
        if (!this.closed) this.options.logger.error('IPC reconnect failed', { error: errorMessage(error) });
      })
      .finally(() => {
        this.reconnecting = undefined;
      });
  }

  // Configuration, component updates and local deployments (used with the local runtime's
  // configuration and deployment support; shapes from the SDK's greengrasscoreipc model).

  /** UpdateConfiguration: merges `valueToMerge` into this component's own configuration at `keyPath`. */
  async updateConfiguration(keyPath: string[], valueToMerge: Record<string, unknown>, timestamp: Date = new Date()): Promise<void> {
    await this.call((c) => c.updateConfiguration({ keyPath, valueToMerge, timestamp }));
  }

  /** SubscribeToConfigurationUpdate: `onUpdate` gets the changed key path for every change at or below `keyPath`. */
  async subscribeToConfigurationUpdate(keyPath: string[], onUpdate: (changedKeyPath: string[], componentName: string) => void, componentName?: string): Promise<void> {
    await this.addSubscription({
      describe: `SubscribeToConfigurationUpdate ${componentName ?? '(own)'} ${keyPath.join('/')}`,
      open: async (client) => {
        const operation = client.subscribeToConfigurationUpdate({ keyPath, componentName });
        operation.on('message', (event) => {
          const update = event.configurationUpdateEvent;
          if (update) onUpdate(update.keyPath ?? [], update.componentName);
        });
        await operation.activate();
        return operation as never;
      },
    });
  }

  /** SubscribeToValidateConfigurationUpdates: answer each event with sendConfigurationValidityReport. */
  async subscribeToValidateConfigurationUpdates(onValidate: (configuration: Record<string, unknown>, deploymentId: string) => void): Promise<void> {
    await this.addSubscription({
      describe: 'SubscribeToValidateConfigurationUpdates',
      open: async (client) => {
        const operation = client.subscribeToValidateConfigurationUpdates({});
        operation.on('message', (event) => {
          const request = event.validateConfigurationUpdateEvent;
          if (request) onValidate((request.configuration ?? {}) as Record<string, unknown>, request.deploymentId);
        });
        await operation.activate();
        return operation as never;
      },
    });
  }

  async sendConfigurationValidityReport(deploymentId: string, status: 'ACCEPTED' | 'REJECTED', message?: string): Promise<void> {
    const validity = status === 'ACCEPTED' ? model.ConfigurationValidityStatus.ACCEPTED : model.ConfigurationValidityStatus.REJECTED;
    await this.call((c) => c.sendConfigurationValidityReport({ configurationValidityReport: { deploymentId, status: validity, message } }));
  }

  /** SubscribeToComponentUpdates: pre-update events (answer with deferComponentUpdate) and post-update events. */
  async subscribeToComponentUpdates(onEvent: (event: { kind: 'pre'; deploymentId: string; isGgcRestarting: boolean } | { kind: 'post'; deploymentId: string }) => void): Promise<void> {
    await this.addSubscription({
      describe: 'SubscribeToComponentUpdates',
      open: async (client) => {
        const operation = client.subscribeToComponentUpdates({});
        operation.on('message', (event) => {
          if (event.preUpdateEvent) onEvent({ kind: 'pre', deploymentId: event.preUpdateEvent.deploymentId, isGgcRestarting: event.preUpdateEvent.isGgcRestarting });
          else if (event.postUpdateEvent) onEvent({ kind: 'post', deploymentId: event.postUpdateEvent.deploymentId });
        });
        await operation.activate();
        return operation as never;
      },
    });
  }

  /** DeferComponentUpdate: recheckAfterMs 0 means "ready now". */
  async deferComponentUpdate(deploymentId: string, recheckAfterMs: number, message?: string): Promise<void> {
    await this.call((c) => c.deferComponentUpdate({ deploymentId, recheckAfterMs, message }));
  }

  /** CreateLocalDeployment (Greengrass CLI principal only); returns the deployment id. */
  async createLocalDeployment(request: {
    groupName?: string;
    rootComponentVersionsToAdd?: Record<string, string>;
    rootComponentsToRemove?: string[];
    componentToConfiguration?: Record<string, { MERGE?: Record<string, unknown>; RESET?: string[] }>;
    recipeDirectoryPath?: string;
    artifactsDirectoryPath?: string;
    failureHandlingPolicy?: 'ROLLBACK' | 'DO_NOTHING';
  }): Promise<string> {
    const { rootComponentVersionsToAdd, componentToConfiguration, failureHandlingPolicy, ...rest } = request;
    const response = await this.call((c) =>
      c.createLocalDeployment({
        ...rest,
        rootComponentVersionsToAdd: rootComponentVersionsToAdd ? new Map(Object.entries(rootComponentVersionsToAdd)) : undefined,
        componentToConfiguration: componentToConfiguration ? new Map(Object.entries(componentToConfiguration)) : undefined,
        failureHandlingPolicy:
          failureHandlingPolicy === undefined ? undefined : failureHandlingPolicy === 'ROLLBACK' ? model.FailureHandlingPolicy.ROLLBACK : model.FailureHandlingPolicy.DO_NOTHING,
      }),
    );
    if (!response.deploymentId) throw new Error('CreateLocalDeployment returned no deploymentId');
    return response.deploymentId;
  }

  async getLocalDeploymentStatus(deploymentId: string): Promise<greengrasscoreipc.model.LocalDeployment> {
    const response = await this.call((c) => c.getLocalDeploymentStatus({ deploymentId }));
    return response.deployment;
  }

  async listLocalDeployments(): Promise<greengrasscoreipc.model.LocalDeployment[]> {
    const response = await this.call((c) => c.listLocalDeployments({}));
    return response.localDeployments ?? [];
  }
}
