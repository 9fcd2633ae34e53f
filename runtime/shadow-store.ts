import { mkdirSync, readdirSync, readFileSync, unlinkSync } from 'node:fs';
import { replaceFileDurably } from '../components/shared/durable-file';
import { join } from 'node:path';

/**
 * The local shadow store: what the aws.greengrass.ShadowManager component keeps on a device, with
 * the AWS IoT Device Shadow document semantics. Each shadow is one JSON file, replaced atomically
 * (temporary file, fsync, rename), so a crash leaves either the old or the new document:
 *
 *   <root>/shadows/<thing>/classic.json            the classic (unnamed) shadow
 *   <root>/shadows/<thing>/name/<shadowName>.json  a named shadow
 *
 * Named shadows sit in their own folder because "classic" is itself a valid shadow name: one
 * folder for both would let a named shadow "classic" overwrite the classic shadow. The layout
 * mirrors the shadow topics ($aws/things/<thing>/shadow and .../shadow/name/<name>).
 *
 * Sources (cited where each rule is applied):
 * - [DOC] AWS IoT Core developer guide, "Device Shadow service documents" (device-shadow-document).
 * - [FLOW] AWS IoT Core developer guide, "Interacting with shadows" (device-shadow-data-flow).
 * - [ERR] AWS IoT Core developer guide, "Device Shadow error messages".
 * - [DIAG] AWS IoT Core developer guide, "Diagnosing problems with shadows".
 * - [GGIPC] Greengrass v2 developer guide, "Interact with local shadows" (ipc-local-shadows).
 * - [GGSM] Greengrass v2 developer guide, "Shadow manager" component configuration.
 * - [SM] github.com/aws-greengrass/aws-greengrass-shadow-manager, src/main/java/com/aws/greengrass/
 *   shadowmanager: model/Constants.java, util/Validator.java, util/JsonUtil.java,
 *   util/JsonMerger.java, model/ShadowState.java, model/ShadowStateMetadata.java,
 *   ipc/UpdateThingShadowRequestHandler.java, ipc/ListNamedShadowsForThingIPCHandler.java,
 *   resources/json/schema/update_payload_schema.json.
 */

/** [SM] Constants.DEFAULT_DOCUMENT_SIZE = 8 * 1024; [GGSM] shadowDocumentSizeLimitBytes "Default: 8192 bytes". */
export const DEFAULT_MAX_DOCUMENT_SIZE_BYTES = 8192;
/** [SM] Constants.MAX_SHADOW_DOCUMENT_SIZE = 30 * 1024; [GGSM] shadowDocumentSizeLimitBytes "Maximum: 30720 bytes". */
export const MAX_DOCUMENT_SIZE_LIMIT_BYTES = 30720;
/**
 * [ERR] "JSON contains too many levels of nesting; maximum is 6"; [SM] Constants.DEFAULT_DOCUMENT_STATE_DEPTH = 6.
 * ([GGIPC] says "eight nodes" in its UpdateThingShadow error list; the shadow manager's code and the
 * AWS IoT service both enforce 6, so 6 it is.)
 */
export const MAX_STATE_DEPTH = 6;
/** [DOC] "The client token can be no longer than 64 bytes"; [SM] update_payload_schema.json maxLength 64. */
export const MAX_CLIENT_TOKEN_BYTES = 64;
/** [SM] Constants.MAX_THING_NAME_LENGTH, MAX_SHADOW_NAME_LENGTH, SHADOW_PATTERN (used for both names). */
export const MAX_THING_NAME_LENGTH = 128;
export const MAX_SHADOW_NAME_LENGTH = 64;
const NAME_PATTERN = /^[a-zA-Z0-9:_-]+$/;
/** [SM] Constants.MIN_PAGE_SIZE, MAX_PAGE_SIZE, DEFAULT_PAGE_SIZE (ListNamedShadowsForThingIPCHandler). */
export const MIN_PAGE_SIZE = 1;
export const MAX_PAGE_SIZE = 100;
export const DEFAULT_PAGE_SIZE = 25;
/**
 * [FLOW] "If you create a device shadow document that has the same name as one that was deleted
 * within the past 48 hours, the version number of the new device shadow document will follow that
 * of the deleted one." After that it starts again, as a new shadow.
 */
export const DELETED_VERSION_RETENTION_MS = 48 * 60 * 60 * 1000;

export type JsonObject = { [key: string]: unknown };

export interface ShadowSections {
  desired?: JsonObject;
  reported?: JsonObject;
}

/** What GetThingShadow returns. */
export interface ShadowDocument {
  state: ShadowSections & { delta?: JsonObject };
  metadata: { desired?: JsonObject; reported?: JsonObject };
  version: number;
  /** Seconds since the epoch: when this response was made ([DOC] "timestamp"). */
  timestamp: number;
}

/** What UpdateThingShadow returns (the /update/accepted document). */
export interface ShadowUpdateResponse {
  /** The request's state, as sent (minus a "delta" node, which clients may not set). */
  state: JsonObject | null;
  /** {timestamp} for every leaf the request touched, deleted ones included. */
  metadata: JsonObject;
  version: number;
  timestamp: number;
  clientToken?: string;
}

export interface ShadowDeleteResponse {
  /** The deleted shadow's version: one more than its last version ([GGIPC] DeleteThingShadow). */
  version: number;
  timestamp: number;
}

export interface ShadowListPage {
  results: string[];
  /** Only when more names follow (SDK model ListNamedShadowsForThingResponse.nextToken). */
  nextToken?: string;
  timestamp: number;
}

export interface ShadowStoreOptions {
  /** Limit on the bytes of the desired plus reported sections; default 8192, at most 30720. */
  maxDocumentSizeBytes?: number;
  /** Clock in epoch milliseconds; tests move it. */
  now?: () => number;
}

/** Bad input: names, JSON, nesting, size, version or clientToken ([ERR] 400 and 413). */
export class ShadowInvalidRequestError extends Error {
  constructor(
    message: string,
    readonly httpCode: 400 | 413 = 400,
  ) {
    super(message);
  }
}

/** [ERR] 404; [SM] GetThingShadowRequestHandler: ResourceNotFoundError "No shadow found", resourceType "shadow". */
export class ShadowNotFoundError extends Error {
  constructor(thingName: string, shadowName: string) {
    super(`No shadow found: thing ${thingName}, ${shadowName === '' ? 'classic shadow' : `shadow ${shadowName}`}`);
  }
}

/** [ERR] 409 "Version conflict". */
export class ShadowConflictError extends Error {
  constructor(
    readonly requestedVersion: number,
    readonly currentVersion: number,
  ) {
    super(`Version conflict: the request is for version ${requestedVersion}, the shadow is at version ${currentVersion}`);
  }
}

/** A shadow file that cannot be read back. Not the caller's fault: a ServiceError. */
export class ShadowStoreCorruptError extends Error {}

interface StoredShadow {
  deleted?: false;
  state: ShadowSections;
  metadata: ShadowSections;
  version: number;
  updatedAt: number;
}

/** A deleted shadow keeps its version for 48 hours ([FLOW]); then it is as if it never existed. */
interface StoredTombstone {
  deleted: true;
  version: number;
  deletedAt: number;
}

type StoredFile = StoredShadow | StoredTombstone;

/** [SM] Validator.validateThingName: required, at most 128 characters, [a-zA-Z0-9:_-]+. */
export function validateThingName(thingName: unknown): string {
  if (typeof thingName !== 'string' || thingName.length === 0) throw new ShadowInvalidRequestError('ThingName is missing');
  if (thingName.length > MAX_THING_NAME_LENGTH) throw new ShadowInvalidRequestError(`ThingName has a maximum length of ${MAX_THING_NAME_LENGTH}`);
  if (!NAME_PATTERN.test(thingName)) throw new ShadowInvalidRequestError('ThingName must match pattern [a-zA-Z0-9:_-]+');
  return thingName;
}

/**
 * [SM] Validator.validateShadowName: an absent or empty name is the classic shadow ([GGIPC] "To
 * specify the thing's classic shadow, set this parameter to an empty string"); otherwise at most 64
 * characters of [a-zA-Z0-9:_-]. Returns "" for the classic shadow.
 */
export function validateShadowName(shadowName: unknown): string {
  if (shadowName === undefined || shadowName === null || shadowName === '') return '';
  if (typeof shadowName !== 'string') throw new ShadowInvalidRequestError('ShadowName must be a string');
  if (shadowName.length > MAX_SHADOW_NAME_LENGTH) throw new ShadowInvalidRequestError(`ShadowName has a maximum length of ${MAX_SHADOW_NAME_LENGTH}`);
  if (!NAME_PATTERN.test(shadowName)) throw new ShadowInvalidRequestError('ShadowName must match pattern [a-zA-Z0-9:_-]+');
  return shadowName;
}

/**
 * Nesting depth as the shadow manager counts it ([SM] JsonUtil.calculateDepth): a non-empty object
 * or array is one level more than its deepest child; values and empty containers add nothing. So
 * `{"a": 1}` is 1 level and `{"a": {"b": 1}}` is 2.
 */
export function jsonDepth(value: unknown): number {
  if (Array.isArray(value)) return value.length === 0 ? 0 : 1 + Math.max(...value.map(jsonDepth));
  if (isObject(value)) {
    const children = Object.values(value);
    return children.length === 0 ? 0 : 1 + Math.max(...children.map(jsonDepth));
  }
  return 0;
}

export class ShadowStore {
  readonly maxDocumentSizeBytes: number;
  private readonly shadowsRoot: string;
  private readonly now: () => number;

  constructor(root: string, options: ShadowStoreOptions = {}) {
    const limit = options.maxDocumentSizeBytes ?? DEFAULT_MAX_DOCUMENT_SIZE_BYTES;
    if (!Number.isInteger(limit) || limit <= 0 || limit > MAX_DOCUMENT_SIZE_LIMIT_BYTES) {
      throw new RangeError(`maxDocumentSizeBytes must be an integer from 1 to ${MAX_DOCUMENT_SIZE_LIMIT_BYTES}, got ${limit}`);
    }
    this.maxDocumentSizeBytes = limit;
    this.shadowsRoot = join(root, 'shadows');
    this.now = options.now ?? Date.now;
  }

  /** GetThingShadow: the stored state plus its delta. Throws ShadowNotFoundError. */
  get(thingName: string, shadowName = ''): ShadowDocument {
    const thing = validateThingName(thingName);
    const name = validateShadowName(shadowName);
    const stored = this.readLive(thing, name);
    if (!stored || stored.deleted) throw new ShadowNotFoundError(thing, name);
    const state: ShadowDocument['state'] = { ...copySections(stored.state) };
    // [DOC] "Delta state": desired fields whose values differ from reported; only when desired exists.
    if (stored.state.desired) {
      const delta = computeDelta(stored.state.desired, stored.state.reported);
      if (Object.keys(delta).length > 0) state.delta = delta;
    }
    return { state, metadata: copySections(stored.metadata), version: stored.version, timestamp: this.seconds() };
  }

  /**
   * UpdateThingShadow with a parsed request document {state: {desired?, reported?}, version?,
   * clientToken?}. Creates the shadow if needed. Throws ShadowInvalidRequestError or
   * ShadowConflictError; nothing is written then.
   */
  update(thingName: string, shadowName: string, request: unknown): ShadowUpdateResponse {
    const thing = validateThingName(thingName);
    const name = validateShadowName(shadowName);
    const parsed = parseUpdateRequest(request);
    const current = this.readLive(thing, name);
    // A deleted shadow (within 48 h) continues from its deleted version ([FLOW], [GGIPC]); a new one starts at 0.
    const currentVersion = current?.version ?? 0;
    // [DOC] "version — If used, the Device Shadow service processes the update only if the specified
    // version matches the latest version it has." [ERR] 409 "Version conflict".
    if (parsed.version !== undefined && parsed.version !== currentVersion) throw new ShadowConflictError(parsed.version, currentVersion);

    const timestamp = this.seconds();
    const old: StoredShadow = current && !current.deleted ? current : { state: {}, metadata: {}, version: currentVersion, updatedAt: timestamp };
    const state: ShadowSections = {};
    const metadata: ShadowSections = {};
    for (const section of ['desired', 'reported'] as const) {
      const oldState = old.state[section];
      const oldMeta = old.metadata[section];
      // [SM] ShadowState.update: "state": null clears both sections.
      const patch = parsed.state === null ? null : parsed.state[section];
      let next: JsonObject | undefined;
      if (patch === undefined) next = oldState;
      else if (patch === null) next = undefined; // [DOC] "set the desired section to null" removes it
      else next = mergeObject(oldState ?? {}, patch);
      // [DOC] "If an update causes the desired or reported sections to become null, the section is removed."
      if (next === undefined || Object.keys(next).length === 0) continue;
      state[section] = next;
      metadata[section] = mergeMetadata(next, oldState, oldMeta, patch, timestamp) as JsonObject;
    }

    // [DIAG] "Only the data for desired and reported state inside the state document ... counts
    // toward the limit"; [DOC] "Metadata do not contribute to the document size"; [SM]
    // UpdateThingShadowRequestHandler checks the merged desired + reported bytes.
    const size = jsonBytes(state.desired) + jsonBytes(state.reported);
    if (size > this.maxDocumentSizeBytes) {
      throw new ShadowInvalidRequestError(
        `The payload exceeds the maximum size allowed: desired and reported would be ${size} bytes, the limit is ${this.maxDocumentSizeBytes}`,
        413,
      );
    }

    // [DOC] "Every time the document is updated, this version number is incremented."
    const version = currentVersion + 1;
    this.write(thing, name, { state, metadata, version, updatedAt: timestamp });

    const response: ShadowUpdateResponse = {
      state: parsed.state,
      // The request state's shape with {timestamp} at every leaf, nulls included ([SM] ShadowStateMetadata.createMetadataPatch).
      metadata: parsed.state === null ? {} : (leafMetadata(parsed.state, timestamp) as JsonObject),
      version,
      timestamp,
    };
    if (parsed.clientToken !== undefined) response.clientToken = parsed.clientToken;
    return response;
  }

  /**
   * DeleteThingShadow. The file is replaced by a tombstone holding the version, so a shadow made
   * again within 48 hours continues from it ([FLOW]). Deleting counts as a version: "when you
   * delete the shadow MyThingShadow at version 1, the version of the deleted shadow is 2. If you
   * then recreate a shadow with the name MyThingShadow, the version for that shadow is 3" ([GGIPC]).
   */
  delete(thingName: string, shadowName = ''): ShadowDeleteResponse {
    const thing = validateThingName(thingName);
    const name = validateShadowName(shadowName);
    const stored = this.readLive(thing, name);
    if (!stored || stored.deleted) throw new ShadowNotFoundError(thing, name);
    const timestamp = this.seconds();
    const version = stored.version + 1;
    this.write(thing, name, { deleted: true, version, deletedAt: timestamp });
    return { version, timestamp };
  }

  /**
   * ListNamedShadowsForThing: the thing's named shadows (never the classic one), sorted, pageSize
   * per page (default 25, 1 to 100). nextToken is opaque: it names the last shadow returned, so a
   * page stays right when shadows are added or deleted in between.
   */
  list(thingName: string, pageSize?: number, nextToken?: string): ShadowListPage {
    const thing = validateThingName(thingName);
    const size = pageSize ?? DEFAULT_PAGE_SIZE;
    if (!Number.isInteger(size) || size < MIN_PAGE_SIZE || size > MAX_PAGE_SIZE) {
      throw new ShadowInvalidRequestError(`pageSize argument must be between ${MIN_PAGE_SIZE} and ${MAX_PAGE_SIZE}`);
    }
    const after = nextToken ? decodeToken(nextToken, thing) : undefined;
    const names = this.namedShadowFiles(thing)
      .filter((name) => after === undefined || name > after)
      .sort();
    const results: string[] = [];
    let more = false;
    for (const name of names) {
      const stored = this.readLive(thing, name);
      if (!stored || stored.deleted) continue;
      if (results.length === size) {
        more = true;
        break;
      }
      results.push(name);
    }
    const page: ShadowListPage = { results, timestamp: this.seconds() };
    if (more) page.nextToken = encodeToken(thing, results[results.length - 1]);
    return page;
  }

  private seconds(): number {
    return Math.floor(this.now() / 1000);
  }

  private pathOf(thingName: string, shadowName: string): string {
    return shadowName === '' ? join(this.shadowsRoot, thingName, 'classic.json') : join(this.shadowsRoot, thingName, 'name', `${shadowName}.json`);
  }

  private namedShadowFiles(thingName: string): string[] {
    let files: string[];
    try {
      files = readdirSync(join(this.shadowsRoot, thingName, 'name'));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    return files
      .map((file) => /^(.+)\.json$/.exec(file)?.[1])
      .filter((name): name is string => name !== undefined && name.length <= MAX_SHADOW_NAME_LENGTH && NAME_PATTERN.test(name));
  }

  /** The stored file, or undefined when there is none or only an expired tombstone (removed then). */
  private readLive(thingName: string, shadowName: string): StoredFile | undefined {
    const path = this.pathOf(thingName, shadowName);
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    const stored = parseStoredFile(text, path);
    if (stored.deleted && this.now() - stored.deletedAt * 1000 > DELETED_VERSION_RETENTION_MS) {
      unlinkSync(path);
      return undefined;
    }
    return stored;
  }

  private write(thingName: string, shadowName: string, content: StoredFile): void {
    const path = this.pathOf(thingName, shadowName);
    mkdirSync(join(path, '..'), { recursive: true });
    // A failed folder fsync only weakens durability across a power cut; the shadow is written.
    replaceFileDurably(path, JSON.stringify(content), 0o600);
  }
}

interface ParsedUpdate {
  state: { desired?: JsonObject | null; reported?: JsonObject | null } | null;
  version?: number;
  clientToken?: string;
}

/** The request checks of [SM] update_payload_schema.json and JsonUtil.validatePayload, with the messages of [ERR]. */
function parseUpdateRequest(request: unknown): ParsedUpdate {
  if (!isObject(request)) throw new ShadowInvalidRequestError('Invalid JSON: the update document must be a JSON object');
  const { state, version, clientToken } = request;
  if (state === undefined) throw new ShadowInvalidRequestError('Missing required node: state');
  if (state !== null && !isObject(state)) throw new ShadowInvalidRequestError('State node must be an object');

  const parsed: ParsedUpdate = { state: null };
  if (state !== null) {
    // [SM] UpdateThingShadowRequestHandler drops "delta" from the request: clients may not set it.
    const rest: JsonObject = { ...state };
    delete rest.delta;
    const { desired, reported } = rest;
    if (desired !== undefined && desired !== null && !isObject(desired)) throw new ShadowInvalidRequestError('Desired node must be an object');
    if (reported !== undefined && reported !== null && !isObject(reported)) throw new ShadowInvalidRequestError('Reported node must be an object');
    // [SM] schema: a state needs "desired" or "reported", or nothing else at all. [ERR] "State contains an invalid node".
    if (desired === undefined && reported === undefined && Object.keys(rest).length > 0) throw new ShadowInvalidRequestError('State contains an invalid node');
    for (const [section, value] of [['desired', desired], ['reported', reported]] as const) {
      if (!isObject(value)) continue;
      if (jsonDepth(value) > MAX_STATE_DEPTH) {
        throw new ShadowInvalidRequestError(`JSON contains too many levels of nesting; maximum is ${MAX_STATE_DEPTH} (${section} has ${jsonDepth(value)})`);
      }
      const where = nullInArray(value, section);
      // [DOC] "Arrays can't have null values ... will be rejected."
      if (where) throw new ShadowInvalidRequestError(`Invalid JSON: arrays can't have null values (${where})`);
    }
    parsed.state = rest as ParsedUpdate['state'];
  }
  // [SM] schema "version": number, minimum 0 (a null version is no version: JsonUtil.isNullOrMissing). [ERR] "Invalid version".
  if (version !== undefined && version !== null) {
    if (typeof version !== 'number' || !Number.isInteger(version) || version < 0) throw new ShadowInvalidRequestError('Invalid version');
    parsed.version = version;
  }
  if (clientToken !== undefined) {
    if (typeof clientToken !== 'string' || Buffer.byteLength(clientToken) > MAX_CLIENT_TOKEN_BYTES) throw new ShadowInvalidRequestError('Invalid clientToken');
    parsed.clientToken = clientToken;
  }
  return parsed;
}

/**
 * Merges a patch into a section ([DOC] "Updates affect only the fields specified"): a null value
 * deletes its key, objects merge key by key, anything else (arrays included: [DOC] "an update to an
 * array replaces the whole array") replaces. An object that ends up empty because the patch
 * deleted its last keys is removed too, the way [DOC] removes a section that becomes null and [SM]
 * JsonMerger.createMergeTree drops a new object that holds only nulls.
 */
function mergeObject(target: JsonObject, patch: JsonObject): JsonObject {
  const result: JsonObject = { ...target };
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) {
      delete result[key];
      continue;
    }
    if (isObject(value)) {
      const base = isObject(result[key]) ? (result[key] as JsonObject) : {};
      const merged = mergeObject(base, value);
      if (Object.keys(merged).length === 0 && Object.keys(value).length > 0) delete result[key];
      else result[key] = merged;
      continue;
    }
    result[key] = structuredClone(value);
  }
  return result;
}

/**
 * The stored metadata of a section after an update: every leaf the patch wrote gets the update's
 * timestamp ([DOC] "metadata ... timestamps, in Epoch time, for each attribute in the state
 * section"); untouched leaves keep theirs; deleted leaves lose theirs. Arrays get one entry per
 * element, as [SM] ShadowStateMetadata does.
 */
function mergeMetadata(next: unknown, oldState: unknown, oldMeta: unknown, patch: unknown, timestamp: number): unknown {
  if (patch === undefined) return oldMeta ?? leafMetadata(next, timestamp);
  if (isObject(next) && isObject(patch) && isObject(oldState)) {
    const result: JsonObject = {};
    for (const key of Object.keys(next)) {
      result[key] = mergeMetadata(next[key], oldState[key], isObject(oldMeta) ? oldMeta[key] : undefined, patch[key], timestamp);
    }
    return result;
  }
  return leafMetadata(next, timestamp);
}

function leafMetadata(value: unknown, timestamp: number): unknown {
  if (Array.isArray(value)) return value.map((element) => leafMetadata(element, timestamp));
  if (isObject(value)) return Object.fromEntries(Object.entries(value).map(([key, child]) => [key, leafMetadata(child, timestamp)]));
  return { timestamp };
}

/** [DOC] "Delta state": desired values that reported lacks or holds differently; nested objects compared key by key. */
function computeDelta(desired: JsonObject, reported: JsonObject | undefined): JsonObject {
  const delta: JsonObject = {};
  for (const [key, want] of Object.entries(desired)) {
    const have = reported?.[key];
    if (have === undefined) delta[key] = structuredClone(want);
    else if (isObject(want) && isObject(have)) {
      const nested = computeDelta(want, have);
      if (Object.keys(nested).length > 0) delta[key] = nested;
    } else if (!deepEqual(want, have)) delta[key] = structuredClone(want);
  }
  return delta;
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((value, i) => deepEqual(value, b[i]));
  if (isObject(a) && isObject(b)) {
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length && keys.every((key) => key in b && deepEqual(a[key], b[key]));
  }
  return false;
}

function nullInArray(value: unknown, path: string): string | undefined {
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i += 1) {
      if (value[i] === null) return `${path}[${i}]`;
      const inner = nullInArray(value[i], `${path}[${i}]`);
      if (inner) return inner;
    }
  } else if (isObject(value)) {
    for (const [key, child] of Object.entries(value)) {
      const inner = nullInArray(child, `${path}.${key}`);
      if (inner) return inner;
    }
  }
  return undefined;
}

function jsonBytes(value: unknown): number {
  return value === undefined ? 0 : Buffer.byteLength(JSON.stringify(value));
}

function copySections(sections: ShadowSections): ShadowSections {
  const copy: ShadowSections = {};
  if (sections.desired) copy.desired = structuredClone(sections.desired);
  if (sections.reported) copy.reported = structuredClone(sections.reported);
  return copy;
}

function parseStoredFile(text: string, path: string): StoredFile {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ShadowStoreCorruptError(`shadow file ${path} is not JSON: ${(error as Error).message}`);
  }
  if (!isObject(value) || typeof value.version !== 'number') throw new ShadowStoreCorruptError(`shadow file ${path} has no version`);
  if (value.deleted === true) {
    if (typeof value.deletedAt !== 'number') throw new ShadowStoreCorruptError(`shadow file ${path}: tombstone without deletedAt`);
    return { deleted: true, version: value.version, deletedAt: value.deletedAt };
  }
  if (!isObject(value.state) || !isObject(value.metadata)) throw new ShadowStoreCorruptError(`shadow file ${path} has no state or metadata`);
  return {
    state: sectionsOf(value.state),
    metadata: sectionsOf(value.metadata),
    version: value.version,
    updatedAt: typeof value.updatedAt === 'number' ? value.updatedAt : 0,
  };
}

function sectionsOf(value: JsonObject): ShadowSections {
  const sections: ShadowSections = {};
  if (isObject(value.desired)) sections.desired = value.desired;
  if (isObject(value.reported)) sections.reported = value.reported;
  return sections;
}

function encodeToken(thingName: string, lastName: string): string {
  return Buffer.from(JSON.stringify({ thing: thingName, after: lastName })).toString('base64url');
}

/** [SM] ListNamedShadowsForThingIPCHandler: a token that does not decode is "Invalid nextToken argument". */
function decodeToken(token: string, thingName: string): string {
  try {
    const value = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as unknown;
    if (isObject(value) && value.thing === thingName && typeof value.after === 'string' && NAME_PATTERN.test(value.after)) return value.after;
  } catch {
    // falls through to the error below
  }
  throw new ShadowInvalidRequestError('Invalid nextToken argument');
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
