import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { compile } from 'json-schema-to-typescript';

// Keeps the released JSON Schemas under components/shared/schemas backward compatible.
// A device in the field keeps sending (and reading) what a released contract allowed, possibly for
// years, so within one major version a schema may only widen what it accepts. `check` compares
// the current files with the committed snapshot (released.json) and with the generated types;
// `release` moves the snapshot forward; `types` regenerates components/shared/contracts.generated.ts.
const usage = `usage: node dist/scripts/contracts.js check|release|types [--schemas DIR] [--released FILE] [--generated FILE] [--accept-breaking]
  check    compare the schemas with the released snapshot and the generated types with the schemas
  release  rewrite the released snapshot from the current schemas (refuses breaking changes unless --accept-breaking)
  types    rewrite the generated TypeScript types from the current schemas
exit: 0 compatible / written, 1 breaking changes, stale generated types or a refused release, 2 bad usage or unreadable files
`;

export const PROJECT_ROOT = resolve(__dirname, '..', '..');
export const DEFAULT_SCHEMAS_DIR = join(PROJECT_ROOT, 'components', 'shared', 'schemas');
export const DEFAULT_RELEASED_FILE = join(DEFAULT_SCHEMAS_DIR, 'released.json');
export const DEFAULT_GENERATED_FILE = join(PROJECT_ROOT, 'components', 'shared', 'contracts.generated.ts');

/** Schema files are <name>.v<major>.schema.json; released.json and anything else is not a contract. */
export const SCHEMA_FILE = /^([a-z0-9]+(?:-[a-z0-9]+)*)\.v([1-9][0-9]*)\.schema\.json$/;

/** Schema file name -> parsed JSON Schema. */
export type SchemaSet = Record<string, object>;

export type BreakingKind =
  | 'schema-removed'
  | 'property-removed'
  | 'type-narrowed'
  | 'constraint-narrowed'
  | 'required-added'
  | 'enum-value-removed'
  | 'const-changed'
  | 'value-meaning-changed'
  /** A keyword this checker does not model changed; it cannot prove the change harmless. */
  | 'unjudged-change';

export type AdditiveKind =
  | 'schema-added'
  | 'property-added'
  | 'type-widened'
  | 'constraint-widened'
  | 'required-removed'
  | 'enum-value-added'
  | 'annotation-changed';

/**
 * One difference between a released schema and its current file. The pointer is a JSON pointer
 * into the schema naming the keyword that changed ('' is the whole file); for something removed
 * it is where it was in the released schema.
 */
export interface Change<Kind extends string> {
  file: string;
  pointer: string;
  kind: Kind;
  message: string;
}
export type Breaking = Change<BreakingKind>;
export type Additive = Change<AdditiveKind>;

export interface Comparison {
  breaking: Breaking[];
  additive: Additive[];
}

// ---------------------------------------------------------------------------------------------
// Comparison
// ---------------------------------------------------------------------------------------------

type Schema = Record<string, unknown>;

/** Keywords that document but never decide what validates. */
const ANNOTATIONS = new Set(['title', 'description', '$comment', 'examples', 'deprecated', 'readOnly', 'writeOnly']);

/** Keywords compareSchema judges; any other keyword that changes is reported as unjudged. */
const JUDGED = new Set([
  'type', 'enum', 'const',
  'minimum', 'exclusiveMinimum', 'minLength', 'minItems', 'minProperties',
  'maximum', 'exclusiveMaximum', 'maxLength', 'maxItems', 'maxProperties',
  'pattern', 'format', 'uniqueItems', 'multipleOf',
  'properties', 'required', 'additionalProperties', 'patternProperties', 'items',
  'allOf', 'anyOf', 'oneOf', 'if', 'then', 'else',
]);

const LOWER_BOUNDS = ['minimum', 'exclusiveMinimum', 'minLength', 'minItems', 'minProperties'] as const;
const UPPER_BOUNDS = ['maximum', 'exclusiveMaximum', 'maxLength', 'maxItems', 'maxProperties'] as const;

class Collector {
  readonly breaking: Breaking[] = [];
  readonly additive: Additive[] = [];
  constructor(private readonly file: string) {}
  breaks(pointer: string, kind: BreakingKind, message: string): void {
    this.breaking.push({ file: this.file, pointer, kind, message });
  }
  adds(pointer: string, kind: AdditiveKind, message: string): void {
    this.additive.push({ file: this.file, pointer, kind, message });
  }
}

/** Every difference between two sets of schemas, file by file, in file-name order. */
export function diffSchemaSets(released: SchemaSet, current: SchemaSet): Comparison {
  const result: Comparison = { breaking: [], additive: [] };
  const files = [...new Set([...Object.keys(released), ...Object.keys(current)])].sort();
  for (const file of files) {
    const out = new Collector(file);
    if (!(file in current)) {
      out.breaks('', 'schema-removed', `the released schema ${file} is gone: devices and services built against it still send and read it; restore the file`);
    } else if (!(file in released)) {
      out.adds('', 'schema-added', `new schema ${file}`);
    } else {
      compareSchema(released[file], current[file], '', out);
    }
    result.breaking.push(...out.breaking);
    result.additive.push(...out.additive);
  }
  return result;
}

/** The breaking changes only: what must not land without a new major version. */
export function compareSchemaSets(released: SchemaSet, current: SchemaSet): Breaking[] {
  return diffSchemaSets(released, current).breaking;
}

/** true accepts everything, false nothing; as objects they go through the same comparison. */
function asSchema(value: unknown): Schema {
  if (value === true || value === undefined) return {};
  if (value === false) return { not: {} };
  return isObject(value) ? value : {};
}

function compareSchema(before: unknown, after: unknown, pointer: string, out: Collector): void {
  const old = asSchema(before);
  const now = asSchema(after);
  compareTypes(old, now, pointer, out);
  compareAllowedValues(old, now, pointer, out);
  compareBounds(old, now, pointer, out);
  compareStringRules(old, now, pointer, out);
  compareArrayAndNumberRules(old, now, pointer, out);
  compareProperties(old, now, pointer, out);
  compareItems(old, now, pointer, out);
  compareCombinators(old, now, pointer, out);
  compareConditional(old, now, pointer, out);
  compareRemainingKeywords(old, now, pointer, out);
}

// --- type ------------------------------------------------------------------------------------

function typeSet(schema: Schema): string[] | undefined {
  const type = schema.type;
  if (type === undefined) return undefined;
  return Array.isArray(type) ? type.map(String) : [String(type)];
}

/** An integer is a number, so "integer" is covered by "number" (not the other way round). */
function covers(types: string[], type: string): boolean {
  return types.includes(type) || (type === 'integer' && types.includes('number'));
}

function jsonTypeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

function compareTypes(old: Schema, now: Schema, pointer: string, out: Collector): void {
  const before = typeSet(old);
  const after = typeSet(now);
  const at = `${pointer}/type`;
  if (after === undefined) {
    if (before !== undefined) out.adds(at, 'type-widened', `type ${show(old.type)} removed: any type is accepted`);
    return;
  }
  if (before === undefined) {
    // A type added beside an enum or const that only holds values of that type changes nothing.
    const allowed = allowedValues(old);
    const rejected = allowed ? [...allowed.values.values()].filter((v) => !covers(after, jsonTypeOf(v.value))) : undefined;
    if (rejected === undefined || rejected.length > 0) {
      out.breaks(at, 'type-narrowed', `type ${show(now.type)} added where any type was accepted: values of other types, valid under the released contract, are now rejected`);
    }
    return;
  }
  const lost = before.filter((t) => !covers(after, t));
  if (lost.length > 0) {
    out.breaks(at, 'type-narrowed', `type narrowed from ${show(old.type)} to ${show(now.type)}: ${lost.join(' and ')} values, valid under the released contract, are now rejected`);
  }
  const gained = after.filter((t) => !covers(before, t));
  if (gained.length > 0) out.adds(at, 'type-widened', `type widened from ${show(old.type)} to ${show(now.type)}`);
}

// --- enum, const and values described one by one ---------------------------------------------

interface AllowedValue {
  value: unknown;
  /** Where the value is written in its schema, relative to the schema. */
  at: string;
  description?: string;
}

/** The oneOf/anyOf whose every branch is a const: an enum whose values carry their own description. */
function describedValuesKeyword(schema: Schema): 'oneOf' | 'anyOf' | undefined {
  for (const keyword of ['oneOf', 'anyOf'] as const) {
    const branches = schema[keyword];
    if (Array.isArray(branches) && branches.length > 0 && branches.every((b) => isObject(b) && 'const' in b)) return keyword;
  }
  return undefined;
}

interface AllowedValues {
  /** The keyword that restricts the values. */
  keyword: 'enum' | 'const' | 'oneOf' | 'anyOf';
  /** Keyed by canonical JSON, so equal values match whatever their key order. */
  values: Map<string, AllowedValue>;
}

/** The values a schema restricts to, by enum, const or described values; undefined if any value goes. */
function allowedValues(schema: Schema): AllowedValues | undefined {
  const values = new Map<string, AllowedValue>();
  const described = describedValuesKeyword(schema);
  if (described) {
    (schema[described] as Schema[]).forEach((branch, i) => {
      const description = typeof branch.description === 'string' ? branch.description : undefined;
      values.set(canonical(branch.const), { value: branch.const, at: `/${described}/${i}`, description });
    });
    return { keyword: described, values };
  }
  if (Array.isArray(schema.enum)) {
    schema.enum.forEach((value) => values.set(canonical(value), { value, at: '/enum' }));
    return { keyword: 'enum', values };
  }
  if ('const' in schema) {
    values.set(canonical(schema.const), { value: schema.const, at: '/const' });
    return { keyword: 'const', values };
  }
  return undefined;
}

function compareAllowedValues(old: Schema, now: Schema, pointer: string, out: Collector): void {
  const was = allowedValues(old);
  const is = allowedValues(now);
  if (!was && !is) return;
  if (!is) {
    out.adds(`${pointer}/${was!.keyword}`, 'constraint-widened', `the restriction to ${show([...was!.values.values()].map((v) => v.value))} was lifted`);
    return;
  }
  const afterList = [...is.values.values()].map((v) => v.value);
  if (!was) {
    if (is.keyword === 'const') {
      out.breaks(`${pointer}/const`, 'const-changed', `const ${show(now.const)} added where any value was accepted: every other value, valid under the released contract, is now rejected`);
    } else {
      out.breaks(`${pointer}/${is.keyword}`, 'constraint-narrowed', `values now restricted to ${show(afterList)} where any value was accepted`);
    }
    return;
  }
  const before = was.values;
  const after = is.values;
  const removed = [...before.entries()].filter(([key]) => !after.has(key));
  const added = [...after.entries()].filter(([key]) => !before.has(key));
  if (was.keyword === 'const' && removed.length > 0) {
    out.breaks(`${pointer}/const`, 'const-changed', `const changed from ${show(old.const)} to ${show(afterList.length === 1 ? afterList[0] : afterList)}: everything sent or stored as ${show(old.const)} no longer matches`);
  } else {
    for (const [, gone] of removed) {
      const renamed = added.length > 0 ? ` (renamed to ${added.map(([, v]) => show(v.value)).join(' or ')}? a rename breaks just the same)` : '';
      out.breaks(`${pointer}${gone.at}`, 'enum-value-removed', `value ${show(gone.value)} removed${renamed}: data already sent or stored with it, valid under the released contract, is now rejected`);
    }
  }
  for (const [, value] of added) out.adds(`${pointer}${value.at}`, 'enum-value-added', `value ${show(value.value)} added`);
  for (const [key, was] of before) {
    const is = after.get(key);
    if (!is || was.description === is.description) continue;
    if (was.description === undefined) {
      out.adds(`${pointer}${is.at}/description`, 'annotation-changed', `value ${show(is.value)} gained a description`);
    } else {
      out.breaks(`${pointer}${was.at}/description`, 'value-meaning-changed', `the meaning of value ${show(was.value)} changed from ${show(was.description)} to ${show(is.description ?? null)}: data already recorded with it would be read differently; add a new value instead`);
    }
  }
}

// --- numeric, length and count bounds; string and array rules --------------------------------

function compareBounds(old: Schema, now: Schema, pointer: string, out: Collector): void {
  for (const keyword of LOWER_BOUNDS) {
    const was = numberOrUndefined(old[keyword]);
    const is = numberOrUndefined(now[keyword]);
    const at = `${pointer}/${keyword}`;
    if (is !== undefined && (was === undefined || is > was)) {
      out.breaks(at, 'constraint-narrowed', `${keyword} ${was === undefined ? `${is} added` : `raised from ${was} to ${is}`}: values below it, valid under the released contract, are now rejected`);
    } else if (was !== undefined && (is === undefined || is < was)) {
      out.adds(at, 'constraint-widened', `${keyword} ${is === undefined ? 'removed' : `lowered from ${was} to ${is}`}`);
    }
  }
  for (const keyword of UPPER_BOUNDS) {
    const was = numberOrUndefined(old[keyword]);
    const is = numberOrUndefined(now[keyword]);
    const at = `${pointer}/${keyword}`;
    if (is !== undefined && (was === undefined || is < was)) {
      out.breaks(at, 'constraint-narrowed', `${keyword} ${was === undefined ? `${is} added` : `lowered from ${was} to ${is}`}: values above it, valid under the released contract, are now rejected`);
    } else if (was !== undefined && (is === undefined || is > was)) {
      out.adds(at, 'constraint-widened', `${keyword} ${is === undefined ? 'removed' : `raised from ${was} to ${is}`}`);
    }
  }
}

function compareStringRules(old: Schema, now: Schema, pointer: string, out: Collector): void {
  for (const keyword of ['pattern', 'format'] as const) {
    const was = old[keyword];
    const is = now[keyword];
    const at = `${pointer}/${keyword}`;
    if (is !== undefined && is !== was) {
      const what = was === undefined ? `${show(is)} added` : `changed from ${show(was)} to ${show(is)}`;
      out.breaks(at, 'constraint-narrowed', `${keyword} ${what}: strings valid under the released contract may now be rejected`);
    } else if (was !== undefined && is === undefined) {
      out.adds(at, 'constraint-widened', `${keyword} ${show(was)} removed`);
    }
  }
}

function compareArrayAndNumberRules(old: Schema, now: Schema, pointer: string, out: Collector): void {
  if (now.uniqueItems === true && old.uniqueItems !== true) {
    out.breaks(`${pointer}/uniqueItems`, 'constraint-narrowed', 'uniqueItems added: arrays with repeated items, valid under the released contract, are now rejected');
  } else if (old.uniqueItems === true && now.uniqueItems !== true) {
    out.adds(`${pointer}/uniqueItems`, 'constraint-widened', 'uniqueItems removed');
  }
  const was = numberOrUndefined(old.multipleOf);
  const is = numberOrUndefined(now.multipleOf);
  // Every multiple of `was` is a multiple of `is` exactly when `was` is itself a multiple of `is`.
  if (is !== undefined && (was === undefined || was % is !== 0)) {
    out.breaks(`${pointer}/multipleOf`, 'constraint-narrowed', `multipleOf ${was === undefined ? `${is} added` : `changed from ${was} to ${is}`}: numbers valid under the released contract are now rejected`);
  } else if (was !== undefined && (is === undefined || is !== was)) {
    out.adds(`${pointer}/multipleOf`, 'constraint-widened', `multipleOf ${is === undefined ? 'removed' : `relaxed from ${was} to ${is}`}`);
  }
}

// --- objects ---------------------------------------------------------------------------------

function compareProperties(old: Schema, now: Schema, pointer: string, out: Collector): void {
  for (const keyword of ['properties', 'patternProperties'] as const) {
    const before = isObject(old[keyword]) ? (old[keyword] as Schema) : {};
    const after = isObject(now[keyword]) ? (now[keyword] as Schema) : {};
    const addedNames = Object.keys(after).filter((name) => !(name in before));
    for (const [name, schema] of Object.entries(before)) {
      const at = `${pointer}/${keyword}/${escapePointer(name)}`;
      if (name in after) {
        compareSchema(schema, after[name], at, out);
      } else {
        const renamed = addedNames.length > 0 ? ` (renamed to ${addedNames.map((n) => `"${n}"`).join(' or ')}? a rename breaks just the same)` : '';
        out.breaks(at, 'property-removed', `property "${name}" removed${renamed}: producers built against the released contract still send it and consumers still read it; keep it (it may be deprecated in its description)`);
      }
    }
    for (const name of addedNames) out.adds(`${pointer}/${keyword}/${escapePointer(name)}`, 'property-added', `property "${name}" added`);
  }

  const requiredBefore = new Set(stringArray(old.required));
  const requiredAfter = stringArray(now.required);
  for (const name of requiredAfter) {
    if (!requiredBefore.has(name)) {
      out.breaks(`${pointer}/required`, 'required-added', `"${name}" is now required: values without it, valid under the released contract (and sent by every device built against it), are now rejected; make it optional`);
    }
  }
  for (const name of requiredBefore) if (!requiredAfter.includes(name)) out.adds(`${pointer}/required`, 'required-removed', `"${name}" is no longer required`);

  const was = old.additionalProperties;
  const is = now.additionalProperties;
  const at = `${pointer}/additionalProperties`;
  const wasOpen = was === undefined || was === true;
  if (is === false && was !== false) {
    out.breaks(at, 'constraint-narrowed', 'additionalProperties set to false: properties not listed in the schema, accepted under the released contract, are now rejected');
  } else if (wasOpen && isObject(is) && Object.keys(is).some((k) => !ANNOTATIONS.has(k))) {
    out.breaks(at, 'constraint-narrowed', `additionalProperties restricted to ${show(is)}: unlisted properties, accepted with any value under the released contract, must now match it`);
  } else if (was === false && is !== false) {
    out.adds(at, 'constraint-widened', 'additionalProperties no longer false: unlisted properties are accepted');
  } else if (isObject(was) && is !== false) {
    compareSchema(was, is, at, out);
  }
}

// --- arrays ----------------------------------------------------------------------------------

function compareItems(old: Schema, now: Schema, pointer: string, out: Collector): void {
  const was = old.items;
  const is = now.items;
  if (was === undefined && is === undefined) return;
  const at = `${pointer}/items`;
  if (Array.isArray(was) && Array.isArray(is)) {
    // Tuple form: one schema per position.
    const shared = Math.min(was.length, is.length);
    for (let i = 0; i < shared; i += 1) compareSchema(was[i], is[i], `${at}/${i}`, out);
    for (let i = shared; i < is.length; i += 1) compareSchema({}, is[i], `${at}/${i}`, out);
    if (was.length > is.length) out.adds(at, 'constraint-widened', `tuple positions ${is.length}..${was.length - 1} no longer constrained`);
  } else if (Array.isArray(was) || Array.isArray(is)) {
    out.breaks(at, 'unjudged-change', 'items changed between the tuple (array) and the single-schema form; this checker cannot prove the change harmless');
  } else {
    compareSchema(was, is, at, out);
  }
}

// --- allOf, anyOf, oneOf, if/then/else -------------------------------------------------------

function compareCombinators(old: Schema, now: Schema, pointer: string, out: Collector): void {
  for (const keyword of ['allOf', 'anyOf', 'oneOf'] as const) {
    // An enum written as described consts is compared value by value in compareAllowedValues.
    if (describedValuesKeyword(old) === keyword || describedValuesKeyword(now) === keyword) continue;
    const was = Array.isArray(old[keyword]) ? (old[keyword] as unknown[]) : undefined;
    const is = Array.isArray(now[keyword]) ? (now[keyword] as unknown[]) : undefined;
    if (!was && !is) continue;
    const at = `${pointer}/${keyword}`;
    const shared = Math.min(was?.length ?? 0, is?.length ?? 0);
    for (let i = 0; i < shared; i += 1) compareSchema(was![i], is![i], `${at}/${i}`, out);
    if (keyword === 'allOf') {
      // Each allOf branch is one more condition: more branches narrow, fewer widen.
      for (let i = shared; i < (is?.length ?? 0); i += 1) out.breaks(`${at}/${i}`, 'constraint-narrowed', `allOf branch ${i} added: every value must now also match ${show(is![i])}`);
      if ((was?.length ?? 0) > shared) out.adds(at, 'constraint-widened', `allOf branches ${shared}..${was!.length - 1} removed`);
    } else if (!was) {
      out.breaks(at, 'constraint-narrowed', `${keyword} added: every value must now match one of its ${is!.length} branches`);
    } else if (!is) {
      out.adds(at, 'constraint-widened', `${keyword} removed`);
    } else {
      for (let i = shared; i < was.length; i += 1) out.breaks(`${at}/${i}`, 'constraint-narrowed', `${keyword} branch ${i} (${show(was[i])}) removed: values that matched only it are now rejected`);
      if (is.length > shared) out.adds(at, 'constraint-widened', `${keyword} branches ${shared}..${is.length - 1} added`);
    }
  }
}

function compareConditional(old: Schema, now: Schema, pointer: string, out: Collector): void {
  const hadIf = old.if !== undefined;
  const hasIf = now.if !== undefined;
  if (!hadIf && !hasIf) return;
  if (hadIf && hasIf) {
    if (canonical(withoutAnnotations(old.if)) !== canonical(withoutAnnotations(now.if))) {
      out.breaks(`${pointer}/if`, 'constraint-narrowed', `the if condition changed from ${show(old.if)} to ${show(now.if)}: values valid under the released contract may now fall under a different then/else`);
    }
    for (const branch of ['then', 'else'] as const) {
      if (old[branch] !== undefined || now[branch] !== undefined) compareSchema(old[branch], now[branch], `${pointer}/${branch}`, out);
    }
  } else if (hasIf) {
    if (now.then !== undefined || now.else !== undefined) out.breaks(`${pointer}/if`, 'constraint-narrowed', 'if/then/else added: values valid under the released contract must now also match the conditional branches');
  } else {
    out.adds(`${pointer}/if`, 'constraint-widened', 'if/then/else removed');
  }
}

// --- everything else ----------------------------------------------------------------------------

function compareRemainingKeywords(old: Schema, now: Schema, pointer: string, out: Collector): void {
  const keywords = [...new Set([...Object.keys(old), ...Object.keys(now)])].filter((k) => !JUDGED.has(k));
  for (const keyword of keywords) {
    if (canonical(old[keyword]) === canonical(now[keyword])) continue;
    const at = `${pointer}/${escapePointer(keyword)}`;
    if (ANNOTATIONS.has(keyword)) {
      out.adds(at, 'annotation-changed', `${keyword} changed`);
    } else {
      out.breaks(at, 'unjudged-change', `${keyword} changed from ${show(old[keyword] ?? null)} to ${show(now[keyword] ?? null)}; this checker cannot prove the change harmless, so it counts as breaking`);
    }
  }
}

// --- helpers ---------------------------------------------------------------------------------

function isObject(value: unknown): value is Schema {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function numberOrUndefined(value: unknown): number | undefined {
  return typeof value === 'number' ? value : undefined;
}

function stringArray(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

function withoutAnnotations(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutAnnotations);
  if (!isObject(value)) return value;
  return Object.fromEntries(Object.entries(value).filter(([k]) => !ANNOTATIONS.has(k)).map(([k, v]) => [k, withoutAnnotations(v)]));
}

/** The value with every object's keys sorted: equal JSON values give equal text. */
export function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (!isObject(value)) return value;
  return Object.fromEntries(Object.keys(value).sort().map((k) => [k, sortKeys(value[k])]));
}

function canonical(value: unknown): string {
  return JSON.stringify(sortKeys(value)) ?? 'undefined';
}

function show(value: unknown): string {
  const text = JSON.stringify(value) ?? 'undefined';
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}

function escapePointer(token: string): string {
  return token.replaceAll('~', '~0').replaceAll('/', '~1');
}

// ---------------------------------------------------------------------------------------------
// Files: the schema directory, the released snapshot, the generated types
// ---------------------------------------------------------------------------------------------

/** Every <name>.v<major>.schema.json in dir, parsed. Throws naming the file that is not JSON. */
export function readSchemaDir(dir: string): SchemaSet {
  const set: SchemaSet = {};
  for (const file of readdirSync(dir).filter((f) => SCHEMA_FILE.test(f)).sort()) {
    set[file] = readJsonObject(join(dir, file));
  }
  return set;
}

export function readReleased(file: string): SchemaSet {
  const snapshot = readJsonObject(file);
  for (const [name, schema] of Object.entries(snapshot)) {
    if (!isObject(schema)) throw new Error(`${file}: entry "${name}" is not a schema object`);
  }
  return snapshot as SchemaSet;
}

function readJsonObject(file: string): Schema {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new Error(`cannot read ${file}: ${(error as Error).message}`);
  }
  if (!isObject(parsed)) throw new Error(`${file} does not hold a JSON object`);
  return parsed;
}

/** released.json text: keys sorted at every level so a release only shows real changes in review. */
export function snapshotText(set: SchemaSet): string {
  return `${JSON.stringify(sortKeys(set), null, 2)}\n`;
}

/** door-cycle.v1.schema.json -> DoorCycleV1 */
export function typeNameOf(file: string): string {
  const match = SCHEMA_FILE.exec(file);
  if (!match) throw new Error(`${file} is not named <name>.v<major>.schema.json`);
  const name = match[1].split('-').map((part) => part[0].toUpperCase() + part.slice(1)).join('');
  return `${name}V${match[2]}`;
}

export const GENERATED_BANNER = `/**
 * GENERATED by \`npm run contracts:types\` from components/shared/schemas/*.v<major>.schema.json.
 * Do not edit: change the schema and regenerate. \`npm run contracts:check\` (part of \`npm test\`)
 * fails while this file differs from what the schemas generate.
 */`;

/**
 * json-schema-to-typescript reads a schema that has nothing but annotations (a description) as an
 * object; in JSON Schema it accepts any value, so it is marked to become unknown.
 */
function markUnconstrained(value: unknown): void {
  if (!isObject(value)) return;
  const subschemas = (keyword: string): unknown[] => {
    const inner = value[keyword];
    if (Array.isArray(inner)) return inner;
    if (keyword === 'properties' || keyword === 'patternProperties') return isObject(inner) ? Object.values(inner) : [];
    return [inner];
  };
  for (const keyword of ['properties', 'patternProperties', 'items', 'additionalProperties', 'allOf', 'anyOf', 'oneOf', 'if', 'then', 'else', 'not']) {
    for (const sub of subschemas(keyword)) {
      if (isObject(sub) && Object.keys(sub).length > 0 && Object.keys(sub).every((k) => ANNOTATIONS.has(k))) sub.tsType = 'unknown';
      markUnconstrained(sub);
    }
  }
}

/** One exported type per schema file, named by typeNameOf, in file-name order. */
export async function generateTypes(set: SchemaSet): Promise<string> {
  const parts: string[] = [];
  for (const file of Object.keys(set).sort()) {
    const schema = structuredClone(set[file]) as Schema;
    // The title names the generated type, so it is set to the name derived from the file.
    schema.title = typeNameOf(file);
    markUnconstrained(schema);
    parts.push(
      await compile(schema as Parameters<typeof compile>[0], typeNameOf(file), {
        bannerComment: '',
        // JSON Schema's own default: an object without additionalProperties accepts more keys.
        additionalProperties: true,
        strictIndexSignatures: true,
        // [from, to] pairs become tuples; longer bounded arrays stay arrays (no unions of tuples).
        maxItems: 2,
        declareExternallyReferenced: true,
        unknownAny: true,
        style: { singleQuote: true, printWidth: 140 },
      }),
    );
  }
  return `${GENERATED_BANNER}\n\n${parts.map((p) => p.trim()).join('\n\n')}\n`;
}

// ---------------------------------------------------------------------------------------------
// CLI
// ---------------------------------------------------------------------------------------------

class UsageError extends Error {}

interface Paths {
  schemas: string;
  released: string;
  generated: string;
}

function formatChange(change: Change<string>): string {
  return `  ${change.file}#${change.pointer}  [${change.kind}] ${change.message}`;
}

function summarizeKinds(changes: Change<string>[]): string {
  const counts = new Map<string, number>();
  for (const c of changes) counts.set(c.kind, (counts.get(c.kind) ?? 0) + 1);
  return counts.size === 0 ? '' : ` (${[...counts].map(([kind, n]) => `${n} ${kind}`).join(', ')})`;
}

const HOW_TO_BREAK =
  'A released contract must keep accepting what it accepted. Undo the change, or make it a new major version: a new file <name>.v<major+1>.schema.json ' +
  '(and, for record data, a new stream such as door-cycle-v2), then `npm run contracts:release`.';

async function check(paths: Paths, log: (line: string) => void): Promise<number> {
  const current = readSchemaDir(paths.schemas);
  const problems: string[] = [];
  let comparison: Comparison = { breaking: [], additive: [] };
  if (!existsSync(paths.released)) {
    problems.push(`no released snapshot at ${relative(PROJECT_ROOT, paths.released)}: run \`npm run contracts:release\` once to create it`);
  } else {
    comparison = diffSchemaSets(readReleased(paths.released), current);
  }
  const generated = await generateTypes(current);
  const committed = existsSync(paths.generated) ? readFileSync(paths.generated, 'utf8') : undefined;
  if (committed !== generated) {
    const state = committed === undefined ? 'is missing' : 'differs from what the schemas generate';
    problems.push(`${relative(PROJECT_ROOT, paths.generated)} ${state}: run \`npm run contracts:types\` and commit the result with the schema change`);
  }
  if (comparison.breaking.length > 0) {
    log(`contracts: ${comparison.breaking.length} breaking change(s) against ${relative(PROJECT_ROOT, paths.released)}:`);
    for (const change of comparison.breaking) log(formatChange(change));
    log(HOW_TO_BREAK);
  }
  for (const problem of problems) log(`contracts: ${problem}`);
  if (comparison.breaking.length > 0 || problems.length > 0) return 1;
  const files = Object.keys(current).length;
  log(`contracts: ${files} schemas compatible with the released snapshot, ${comparison.additive.length} additive change(s)${summarizeKinds(comparison.additive)}, generated types up to date`);
  return 0;
}

function release(paths: Paths, acceptBreaking: boolean, log: (line: string) => void): number {
  const current = readSchemaDir(paths.schemas);
  const released = existsSync(paths.released) ? readReleased(paths.released) : undefined;
  const comparison = diffSchemaSets(released ?? {}, current);
  if (comparison.breaking.length > 0) {
    log(`contracts: ${comparison.breaking.length} breaking change(s) against the released snapshot:`);
    for (const change of comparison.breaking) log(formatChange(change));
    if (!acceptBreaking) {
      log(`contracts: not released. ${HOW_TO_BREAK} (--accept-breaking releases anyway, for a contract nothing has used yet.)`);
      return 1;
    }
  }
  writeFileSync(paths.released, snapshotText(current));
  if (!released) log(`contracts: created ${relative(PROJECT_ROOT, paths.released)}`);
  for (const change of comparison.additive) log(formatChange(change));
  const files = Object.keys(current).length;
  const added = comparison.additive.filter((c) => c.kind === 'schema-added').length;
  const removed = comparison.breaking.filter((c) => c.kind === 'schema-removed').length;
  const changed = new Set([...comparison.additive, ...comparison.breaking].filter((c) => c.pointer !== '').map((c) => c.file)).size;
  log(`contracts: released ${files} schemas (${added} new, ${changed} changed, ${files - added - changed} unchanged, ${removed} removed)`);
  return 0;
}

async function writeTypes(paths: Paths, log: (line: string) => void): Promise<number> {
  const current = readSchemaDir(paths.schemas);
  const text = await generateTypes(current);
  const before = existsSync(paths.generated) ? readFileSync(paths.generated, 'utf8') : undefined;
  writeFileSync(paths.generated, text);
  const state = before === undefined ? 'created' : before === text ? 'unchanged' : 'updated';
  log(`contracts: ${relative(PROJECT_ROOT, paths.generated)} ${state} (${Object.keys(current).map(typeNameOf).join(', ')})`);
  return 0;
}

export async function main(argv: string[], log: (line: string) => void = (line) => process.stdout.write(`${line}\n`)): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        schemas: { type: 'string' },
        released: { type: 'string' },
        generated: { type: 'string' },
        'accept-breaking': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(usage);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError(`expected one command (check, release or types), got ${positionals.length === 0 ? 'none' : positionals.join(' ')}`);
  const paths: Paths = {
    schemas: values.schemas ? resolve(values.schemas) : DEFAULT_SCHEMAS_DIR,
    released: values.released ? resolve(values.released) : DEFAULT_RELEASED_FILE,
    generated: values.generated ? resolve(values.generated) : DEFAULT_GENERATED_FILE,
  };
  const command = positionals[0];
  if (command === 'check') return check(paths, log);
  if (command === 'release') return release(paths, values['accept-breaking']!, log);
  if (command === 'types') return writeTypes(paths, log);
  throw new UsageError(`unknown command "${command}"`);
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error) => {
      process.stderr.write(error instanceof UsageError ? `${error.message}\n${usage}` : `contracts failed: ${(error as Error).message}\n`);
      process.exitCode = 2;
    },
  );
}
