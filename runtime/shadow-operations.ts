import { CONFLICT, INVALID_ARGUMENTS, IpcError, RESOURCE_NOT_FOUND, type CallContext, type OperationHandler } from './ipc-service';
import {
  ShadowConflictError,
  ShadowInvalidRequestError,
  ShadowNotFoundError,
  validateShadowName,
  validateThingName,
  type ShadowStore,
} from './shadow-store';

/**
 * The shadow IPC operations of aws.greengrass.ShadowManager on top of a ShadowStore. Shapes are
 * the SDK's service model (greengrasscoreipc): every `payload` is a JSON document, base64 in the
 * eventstream JSON.
 *
 * Authorization ([GGIPC] Greengrass v2 developer guide, "Interact with local shadows",
 * Authorization; aws-greengrass-shadow-manager AuthorizationHandlerWrapper and model/Constants):
 * - IPC service identifier `aws.greengrass.ShadowManager`;
 * - Get/Update/DeleteThingShadow: the shadow's topic prefix, `$aws/things/<thing>/shadow` for the
 *   classic shadow and `$aws/things/<thing>/shadow/name/<name>` for a named one
 *   (Constants.CLASSIC_SHADOW_TOPIC_PREFIX, NAMED_SHADOW_TOPIC_PREFIX);
 * - ListNamedShadowsForThing: the thing name itself ("A thing name string that allows access to
 *   the thing to list its shadows"; ListNamedShadowsForThingIPCHandler authorizes thingName).
 *
 * Order of checks, as the shadow manager's request handlers do it: names first
 * (InvalidArgumentsError), then authorization (UnauthorizedError), then the document.
 *
 * Errors: a missing shadow is ResourceNotFoundError, a stale version ConflictError, bad input
 * (names, JSON, nesting, size, version, clientToken, pageSize, nextToken) InvalidArgumentsError,
 * anything else ServiceError. IpcService sends a shape the operation's model does not list as
 * ServiceError.
 *
 * Not done here, unlike the shadow manager: the /accepted, /rejected, /delta and /documents
 * messages on local pub/sub, cloud sync, and the request rate limits.
 */
export const SHADOW_MANAGER_SERVICE = 'aws.greengrass.ShadowManager';
export const GET_THING_SHADOW = 'aws.greengrass#GetThingShadow';
export const UPDATE_THING_SHADOW = 'aws.greengrass#UpdateThingShadow';
export const DELETE_THING_SHADOW = 'aws.greengrass#DeleteThingShadow';
export const LIST_NAMED_SHADOWS_FOR_THING = 'aws.greengrass#ListNamedShadowsForThing';

/** The authorization resource of a shadow: its topic prefix. shadowName "" is the classic shadow. */
export function shadowResource(thingName: string, shadowName: string): string {
  return shadowName === '' ? `$aws/things/${thingName}/shadow` : `$aws/things/${thingName}/shadow/name/${shadowName}`;
}

export function shadowOperations(store: ShadowStore): Record<string, OperationHandler> {
  return {
    [GET_THING_SHADOW]: (context) =>
      mapped(() => {
        const { thing, name } = shadowNames(context);
        context.authorize(SHADOW_MANAGER_SERVICE, GET_THING_SHADOW, shadowResource(thing, name));
        return { payload: encodePayload(store.get(thing, name)) };
      }),

    [UPDATE_THING_SHADOW]: (context) =>
      mapped(() => {
        const { thing, name } = shadowNames(context);
        const raw = typeof context.request.payload === 'string' ? Buffer.from(context.request.payload, 'base64') : Buffer.alloc(0);
        // Shadow manager UpdateThingShadowRequestHandler: an empty payload is refused before authorization.
        if (raw.length === 0) throw new ShadowInvalidRequestError('Missing update payload');
        context.authorize(SHADOW_MANAGER_SERVICE, UPDATE_THING_SHADOW, shadowResource(thing, name));
        let document: unknown;
        try {
          document = JSON.parse(raw.toString('utf8'));
        } catch (error) {
          throw new ShadowInvalidRequestError(`Invalid JSON: ${(error as Error).message}`);
        }
        return { payload: encodePayload(store.update(thing, name, document)) };
      }),

    [DELETE_THING_SHADOW]: (context) =>
      mapped(() => {
        const { thing, name } = shadowNames(context);
        context.authorize(SHADOW_MANAGER_SERVICE, DELETE_THING_SHADOW, shadowResource(thing, name));
        store.delete(thing, name);
        // [GGIPC] DeleteThingShadow response: "An empty response state document"; the shadow
        // manager sets an empty payload (DeleteThingShadowRequestHandler).
        return { payload: '' };
      }),

    [LIST_NAMED_SHADOWS_FOR_THING]: (context) =>
      mapped(() => {
        const thing = validateThingName(context.request.thingName);
        context.authorize(SHADOW_MANAGER_SERVICE, LIST_NAMED_SHADOWS_FOR_THING, thing);
        const { pageSize, nextToken } = context.request;
        if (pageSize !== undefined && pageSize !== null && typeof pageSize !== 'number') throw new ShadowInvalidRequestError('pageSize must be a number');
        if (nextToken !== undefined && nextToken !== null && typeof nextToken !== 'string') throw new ShadowInvalidRequestError('nextToken must be a string');
        const page = store.list(thing, pageSize ?? undefined, nextToken || undefined);
        // The model's timestamp is a Date, sent as seconds since the epoch (SDK eventstream_rpc_utils.encodeDateAsNumber).
        return page.nextToken === undefined ? { results: page.results, timestamp: page.timestamp } : page;
      }),
  };
}

function shadowNames(context: CallContext): { thing: string; name: string } {
  return { thing: validateThingName(context.request.thingName), name: validateShadowName(context.request.shadowName) };
}

function encodePayload(document: unknown): string {
  return Buffer.from(JSON.stringify(document)).toString('base64');
}

/** Store errors become the IPC shapes; AuthorizationError and anything else pass through to IpcService. */
function mapped<T>(operation: () => T): T {
  try {
    return operation();
  } catch (error) {
    if (error instanceof ShadowNotFoundError) throw new IpcError(RESOURCE_NOT_FOUND, error.message);
    if (error instanceof ShadowConflictError) throw new IpcError(CONFLICT, error.message);
    if (error instanceof ShadowInvalidRequestError) throw new IpcError(INVALID_ARGUMENTS, error.message);
    throw error;
  }
}
