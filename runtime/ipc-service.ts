import { makeServiceModel } from 'aws-iot-device-sdk-v2/dist/greengrasscoreipc/model_utils';
import type { Logger } from '../components/shared/logger';
import { errorMessage } from '../components/shared/logger';
import { AuthorizationError, Authorizer, MQTTPROXY_SERVICE, PUBSUB_SERVICE, type AccessControl } from './authorization';
import { FLAG_TERMINATE_STREAM, MessageType, type Frame, type RpcConnection, type RpcHandlers } from './eventstream-server';
import type { IotBridge } from './iot-bridge';
import type { LocalMessage, LocalPubSub } from './local-pubsub';
import { jsonPointer } from './recipe';
import { PublishRefusedError } from './spooler';
import { invalidIotTopicReason } from './iot-topic';
import { hasWildcard, invalidFilterReason } from '../components/shared/topic-filter';
import { MAX_TOPIC_BYTES } from '../components/shared/topics';
import { countInto } from '../components/shared/heartbeat-metrics';

/**
 * The Greengrass IPC services on top of the eventstream-RPC server. Operation names, request,
 * response and error shapes come from the SDK's own service model (greengrasscoreipc), so the
 * runtime answers exactly the shapes the unmodified client expects.
 */
const serviceModel = makeServiceModel();

/** The nucleus allows at most 50 subscriptions on one IPC connection. */
export const MAX_SUBSCRIPTIONS_PER_CONNECTION = 50;

/** The principal the local CLI (npm start, tests) connects as; like aws.greengrass.Cli. */
export const CLI_PRINCIPAL = 'aws.greengrass.Cli';

/**
 * What the local CLI may do besides StopComponent/RestartComponent: listen to local pub/sub
 * (heartbeats for the live status line). Everything else is denied, as for any component.
 */
const CLI_ACCESS_CONTROL: AccessControl = {
  [PUBSUB_SERVICE]: {
    'aws.greengrass.Cli:pubsub:1': { policyDescription: 'Observe local pub/sub', operations: ['aws.greengrass#SubscribeToTopic'], resources: ['*'] },
  },
};

export interface ComponentHandle {
  name: string;
  configuration(): Record<string, unknown>;
  reportState(state: 'RUNNING' | 'ERRORED'): void;
}

export interface RuntimeControl {
  principalForToken(token: string): string | undefined;
  component(name: string): ComponentHandle | undefined;
  stopComponent(name: string): Promise<void>;
  restartComponent(name: string): Promise<void>;
}

export class IpcError extends Error {
  constructor(
    readonly shape: string,
    message: string,
  ) {
    super(message);
  }
}

export const SERVICE_ERROR = 'aws.greengrass#ServiceError';
/**
 * Operations whose handler the nucleus runs with handleRequestAsync: the connection's next
 * request does not wait for their reply (MqttProxyIPCAgent, SubscribeToIoTCore).
 */
const COMPLETES_ASYNCHRONOUSLY = new Set(['aws.greengrass#SubscribeToIoTCore']);
const noop = (): void => undefined;

/** How long SubscribeToIoTCore waits for the broker's SUBACK before it fails the call. */
const SUBACK_TIMEOUT_MS = 10_000;
export const UNAUTHORIZED = 'aws.greengrass#UnauthorizedError';
export const INVALID_ARGUMENTS = 'aws.greengrass#InvalidArgumentsError';
export const RESOURCE_NOT_FOUND = 'aws.greengrass#ResourceNotFoundError';
export const COMPONENT_NOT_FOUND = 'aws.greengrass#ComponentNotFoundError';
export const CONFLICT = 'aws.greengrass#ConflictError';

export interface CallContext {
  principal: string;
  request: Record<string, unknown>;
  /** Throws AuthorizationError (sent as UnauthorizedError) unless the caller's accessControl allows it. */
  authorize(service: string, operation: string, resource: string): void;
  /** For streaming operations: sends one inbound event on the stream. */
  emit(event: unknown): void;
  /** For streaming operations: registers cleanup for when the stream or connection closes. */
  onClose(cleanup: () => void): void;
}

/** One IPC operation: returns the response shape's JSON, or throws IpcError / AuthorizationError. */
export type OperationHandler = (context: CallContext) => Promise<unknown> | unknown;

export interface IpcServiceCounters {
  calls: Record<string, number>;
  errors: Record<string, number>;
}

export class IpcService implements RpcHandlers {
  readonly counters: IpcServiceCounters = { calls: {}, errors: {} };
  private readonly streamCleanups = new Map<RpcConnection, Map<number, Array<() => void>>>();
  private readonly connectionQueues = new Map<RpcConnection, Promise<void>>();
  private readonly operations: Record<string, OperationHandler>;

  constructor(
    private readonly runtime: RuntimeControl,
    private readonly authorizer: Authorizer,
    private readonly pubsub: LocalPubSub,
    private readonly bridge: IotBridge,
    private readonly logger: Logger,
    /** Operations served by other runtime modules (shadows, configuration, deployments). */
    extraOperations: Record<string, OperationHandler> = {},
  ) {
    this.operations = {
      ...extraOperations,
      'aws.greengrass#PublishToTopic': (c) => this.publishToTopic(c),
      'aws.greengrass#SubscribeToTopic': (c) => this.subscribeToTopic(c),
      'aws.greengrass#PublishToIoTCore': (c) => this.publishToIoTCore(c),
      'aws.greengrass#SubscribeToIoTCore': (c) => this.subscribeToIoTCore(c),
      'aws.greengrass#UpdateState': (c) => this.updateState(c),
      'aws.greengrass#GetConfiguration': (c) => this.getConfiguration(c),
      'aws.greengrass#StopComponent': (c) => this.lifecycleCommand(c, 'stop'),
      'aws.greengrass#RestartComponent': (c) => this.lifecycleCommand(c, 'restart'),
    };
  }

  authenticate(token: string | undefined): string | undefined {
    return token ? this.runtime.principalForToken(token) : undefined;
  }

  onStreamOpen(connection: RpcConnection, streamId: number, operation: string, frame: Frame): void {
    countInto(this.counters.calls, operation);
    const model = serviceModel.operations.get(operation);
    const handler = this.operations[operation];
    if (!model || !handler) {
      this.count(operation, 'unsupported');
      this.logger.warn('ipc operation not supported', { principal: connection.principal, operation });
      // Not a modelled shape: the SDK client surfaces this plain-text reason as its error.
      connection.send({
        type: MessageType.ApplicationError,
        flags: FLAG_TERMINATE_STREAM,
        streamId,
        headers: { ':content-type': 'text/plain' },
        payload: `Operation ${operation} is not supported by the local Greengrass runtime`,
      });
      return;
    }
    let request: Record<string, unknown>;
    try {
      const parsed = frame.payload.length > 0 ? JSON.parse(frame.payload.toString('utf8')) : {};
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('request is not a JSON object');
      request = parsed;
    } catch (error) {
      return this.sendError(connection, streamId, operation, new IpcError(INVALID_ARGUMENTS, `request payload: ${errorMessage(error)}`));
    }
    const streaming = model.inboundMessageShape !== undefined;
    const context: CallContext = {
      principal: connection.principal,
      request,
      authorize: (service, op, resource) => this.authorize(connection.principal, service, op, resource),
      emit: (event) => {
        if (connection.closed) return;
        connection.send({
          type: MessageType.ApplicationMessage,
          streamId,
          headers: { 'service-model-type': model.inboundMessageShape!, ':content-type': 'application/json' },
          payload: JSON.stringify(event),
        });
      },
      onClose: (cleanup) => {
        const byStream = this.streamCleanups.get(connection) ?? new Map<number, Array<() => void>>();
        this.streamCleanups.set(connection, byStream);
        byStream.set(streamId, [...(byStream.get(streamId) ?? []), cleanup]);
      },
    };
    if (streaming && this.subscriptionCount(connection) >= MAX_SUBSCRIPTIONS_PER_CONNECTION) {
      return this.sendError(connection, streamId, operation, new IpcError(SERVICE_ERROR, `at most ${MAX_SUBSCRIPTIONS_PER_CONNECTION} subscriptions per IPC connection`));
    }
    // Requests of one connection are handled in arrival order, as the nucleus's event loop does:
    // the next handler starts once this one has finished, except after an operation the nucleus
    // completes asynchronously (SubscribeToIoTCore waits for the broker's SUBACK off that thread).
    const previous = this.connectionQueues.get(connection) ?? Promise.resolve();
    // Wrapped so that the handler's promise is not adopted here: "started" means it was called.
    const started = previous.then(() => ({ result: handler(context) }));
    const call = started
      .then(({ result }) => result)
      .then((response) => {
        connection.send({
          type: MessageType.ApplicationMessage,
          // A streaming operation's stream stays open for its events.
          flags: streaming ? 0 : FLAG_TERMINATE_STREAM,
          streamId,
          headers: { 'service-model-type': model.responseShape, ':content-type': 'application/json' },
          payload: JSON.stringify(response ?? {}),
        });
      })
      .catch((error: unknown) => {
        this.closeStream(connection, streamId);
        this.sendError(connection, streamId, operation, error);
      });
    this.connectionQueues.set(connection, COMPLETES_ASYNCHRONOUSLY.has(operation) ? started.then(noop, noop) : call);
  }

  onStreamFrame(connection: RpcConnection, streamId: number, frame: Frame): void {
    if ((frame.flags & FLAG_TERMINATE_STREAM) !== 0) this.closeStream(connection, streamId);
  }

  onConnectionClosed(connection: RpcConnection): void {
    this.connectionQueues.delete(connection);
    const byStream = this.streamCleanups.get(connection);
    if (byStream) for (const streamId of [...byStream.keys()]) this.closeStream(connection, streamId);
    this.streamCleanups.delete(connection);
  }

  private subscriptionCount(connection: RpcConnection): number {
    return this.streamCleanups.get(connection)?.size ?? 0;
  }

  private closeStream(connection: RpcConnection, streamId: number): void {
    const byStream = this.streamCleanups.get(connection);
    const cleanups = byStream?.get(streamId);
    if (!cleanups) return;
    byStream!.delete(streamId);
    for (const cleanup of cleanups) cleanup();
  }

  private sendError(connection: RpcConnection, streamId: number, operation: string, error: unknown): void {
    const model = serviceModel.operations.get(operation);
    let shape = error instanceof IpcError ? error.shape : SERVICE_ERROR;
    if (error instanceof AuthorizationError) shape = UNAUTHORIZED;
    if (model && !model.errorShapes.has(shape)) shape = SERVICE_ERROR;
    const message = errorMessage(error);
    this.count(operation, shape);
    this.logger.warn('ipc call failed', { principal: connection.principal, operation, error: shape, reason: message });
    connection.send({
      type: MessageType.ApplicationError,
      flags: FLAG_TERMINATE_STREAM,
      streamId,
      headers: { 'service-model-type': shape, ':content-type': 'application/json' },
      payload: JSON.stringify({ message }),
    });
  }

  private count(operation: string, outcome: string): void {
    countInto(this.counters.errors, `${operation}:${outcome}`);
  }

  private accessControlOf(principal: string): AccessControl | undefined {
    if (principal === CLI_PRINCIPAL) return CLI_ACCESS_CONTROL;
    return this.runtime.component(principal)?.configuration().accessControl as AccessControl | undefined;
  }

  private authorize(principal: string, service: string, operation: string, resource: string): void {
    this.authorizer.check(principal, this.accessControlOf(principal), service, operation, resource);
  }

  private publishToTopic({ principal, request }: CallContext): unknown {
    const topic = requireTopic(request.topic, 'topic');
    if (hasWildcard(topic)) throw new IpcError(INVALID_ARGUMENTS, `topic "${topic}": a publish topic cannot contain wildcards`);
    this.authorize(principal, PUBSUB_SERVICE, 'aws.greengrass#PublishToTopic', topic);
    const publishMessage = request.publishMessage as { jsonMessage?: { message?: unknown }; binaryMessage?: { message?: string } } | undefined;
    let message: LocalMessage;
    if (publishMessage?.jsonMessage) message = { kind: 'json', message: publishMessage.jsonMessage.message };
    else if (typeof publishMessage?.binaryMessage?.message === 'string') message = { kind: 'binary', message: Buffer.from(publishMessage.binaryMessage.message, 'base64') };
    else throw new IpcError(INVALID_ARGUMENTS, 'publishMessage needs jsonMessage or binaryMessage');
    this.pubsub.publish(principal, topic, message);
    return {};
  }

  private subscribeToTopic(context: CallContext): unknown {
    const { principal, request } = context;
    const topic = requireTopic(request.topic, 'topic');
    const invalid = invalidFilterReason(topic);
    if (invalid) throw new IpcError(INVALID_ARGUMENTS, invalid);
    this.authorize(principal, PUBSUB_SERVICE, 'aws.greengrass#SubscribeToTopic', topic);
    const receiveOwn = request.receiveMode !== 'RECEIVE_MESSAGES_FROM_OTHERS';
    const unsubscribe = this.pubsub.subscribe(topic, principal, receiveOwn, (actualTopic, message) => {
      const context_ = { topic: actualTopic };
      context.emit(
        message.kind === 'json'
          ? { jsonMessage: { message: message.message, context: context_ } }
          : { binaryMessage: { message: message.message.toString('base64'), context: context_ } },
      );
    });
    context.onClose(unsubscribe);
    return { topicName: topic };
  }

  private publishToIoTCore({ principal, request }: CallContext): unknown {
    const topic = requireIotTopic(request.topicName, 'publish');
    this.authorize(principal, MQTTPROXY_SERVICE, 'aws.greengrass#PublishToIoTCore', topic);
    const qos = parseQos(request.qos);
    const payload = typeof request.payload === 'string' ? Buffer.from(request.payload, 'base64') : Buffer.alloc(0);
    if (payload.length > this.bridge.maxMessageSize) {
      throw new IpcError(INVALID_ARGUMENTS, `payload is ${payload.length} bytes; mqtt.maxMessageSizeInBytes is ${this.bridge.maxMessageSize}`);
    }
    try {
      this.bridge.publish(topic, payload, qos, request.retain === true);
    } catch (error) {
      if (error instanceof PublishRefusedError) throw new IpcError(SERVICE_ERROR, error.message);
      throw error;
    }
    return {};
  }

  private async subscribeToIoTCore(context: CallContext): Promise<unknown> {
    const { principal, request } = context;
    const topic = requireIotTopic(request.topicName, 'subscribe');
    const invalid = invalidFilterReason(topic);
    if (invalid) throw new IpcError(INVALID_ARGUMENTS, invalid);
    this.authorize(principal, MQTTPROXY_SERVICE, 'aws.greengrass#SubscribeToIoTCore', topic);
    const unsubscribe = this.bridge.subscribe(topic, (actualTopic, payload, retain) =>
      context.emit({ message: { topicName: actualTopic, payload: payload.toString('base64'), retain } }),
    );
    context.onClose(unsubscribe);
    try {
      await withTimeout(this.bridge.whenSubscribed(topic), SUBACK_TIMEOUT_MS, `no SUBACK from the IoT broker for ${topic} within ${SUBACK_TIMEOUT_MS} ms`);
    } catch (error) {
      unsubscribe();
      throw new IpcError(SERVICE_ERROR, `Subscribe to topic ${topic} failed: ${errorMessage(error)}`);
    }
    return {};
  }

  private updateState({ principal, request }: CallContext): unknown {
    const state = request.state;
    if (state !== 'RUNNING' && state !== 'ERRORED') throw new IpcError(INVALID_ARGUMENTS, `state must be RUNNING or ERRORED, got ${JSON.stringify(state)}`);
    const component = this.runtime.component(principal);
    if (!component) throw new IpcError(SERVICE_ERROR, `${principal} is not a component`);
    component.reportState(state);
    return {};
  }

  /** keyPath semantics of the nucleus: a leaf comes back wrapped as { <lastKey>: value }. */
  private getConfiguration({ principal, request }: CallContext): unknown {
    const name = typeof request.componentName === 'string' && request.componentName ? request.componentName : principal;
    const component = this.runtime.component(name);
    if (!component) throw new IpcError(RESOURCE_NOT_FOUND, `component ${name} is not known to this runtime`);
    const keyPath = Array.isArray(request.keyPath) ? request.keyPath.map(String) : [];
    const pointer = keyPath.map((k) => `/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`).join('');
    const value = jsonPointer(component.configuration(), pointer);
    if (value === undefined) throw new IpcError(RESOURCE_NOT_FOUND, `key path ${JSON.stringify(keyPath)} not found in the configuration of ${name}`);
    const wrapped = typeof value === 'object' && value !== null && !Array.isArray(value) ? value : { [keyPath[keyPath.length - 1]]: value };
    return { componentName: name, value: wrapped };
  }

  private async lifecycleCommand({ principal, request }: CallContext, command: 'stop' | 'restart'): Promise<unknown> {
    if (principal !== CLI_PRINCIPAL) throw new AuthorizationError(`Principal ${principal} is not authorized to ${command} components`);
    const name = String(request.componentName ?? '');
    if (!this.runtime.component(name)) throw new IpcError(COMPONENT_NOT_FOUND, `component ${name} is not known to this runtime`);
    if (command === 'stop') {
      await this.runtime.stopComponent(name);
      return { stopStatus: 'SUCCEEDED', message: `${name} stopped` };
    }
    await this.runtime.restartComponent(name);
    return { restartStatus: 'SUCCEEDED', message: `${name} restarted` };
  }
}

function requireTopic(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.length === 0) throw new IpcError(INVALID_ARGUMENTS, `${field} is required`);
  if (Buffer.byteLength(value) > MAX_TOPIC_BYTES) throw new IpcError(INVALID_ARGUMENTS, `${field} is longer than ${MAX_TOPIC_BYTES} bytes`);
  return value;
}

function requireIotTopic(value: unknown, operation: 'publish' | 'subscribe'): string {
  if (typeof value !== 'string') throw new IpcError(INVALID_ARGUMENTS, 'topicName is required');
  const invalid = invalidIotTopicReason(value, operation);
  if (invalid) throw new IpcError(INVALID_ARGUMENTS, `topicName: ${invalid}`);
  return value;
}

function parseQos(value: unknown): 0 | 1 {
  if (value === '0' || value === 0) return 0;
  if (value === '1' || value === 1) return 1;
  // The nucleus refuses a publish without a QoS ("QoS is required", MqttProxyIPCAgent).
  if (value === undefined) throw new IpcError(INVALID_ARGUMENTS, 'qos is required');
  throw new IpcError(INVALID_ARGUMENTS, `qos must be "0" or "1", got ${JSON.stringify(value)}`);
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
