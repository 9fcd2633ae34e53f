import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { compileValidator } from '../components/shared/validation';

/**
 * Greengrass component recipes (developer guide, "AWS IoT Greengrass component recipe reference").
 * Only RecipeFormatVersion 2020-01-25 exists. This is the subset the local runtime honours; a
 * recipe that breaks it is refused with the file and the field named.
 */
export interface LifecycleStep {
  Script: string;
  Timeout?: number;
  Setenv?: Record<string, string>;
  RequiresPrivilege?: boolean;
  Skipif?: string;
}

export type LifecycleEntry = string | LifecycleStep;

export interface Lifecycle {
  Setenv?: Record<string, string>;
  Install?: LifecycleEntry;
  Startup?: LifecycleEntry;
  Run?: LifecycleEntry;
  Shutdown?: LifecycleEntry;
  Recover?: LifecycleEntry;
  /**
   * Seconds after an error before the error count restarts. The nucleus reads it from the
   * component's `lifecycle` (Lifecycle.getErrorResetTime: services.<name>.lifecycle.errorResetTime,
   * default 3600), where the recipe's Lifecycle is copied (KernelConfigResolver.getServiceConfig).
   */
  errorResetTime?: number;
}

export interface Dependency {
  VersionRequirement?: string;
  DependencyType?: 'HARD' | 'SOFT';
}

export interface Recipe {
  RecipeFormatVersion: '2020-01-25';
  ComponentName: string;
  ComponentVersion: string;
  ComponentDescription?: string;
  ComponentPublisher?: string;
  ComponentConfiguration?: { DefaultConfiguration?: Record<string, unknown> };
  ComponentDependencies?: Record<string, Dependency>;
  Manifests: Array<{ Name?: string; Platform?: Record<string, string>; Lifecycle: Lifecycle; Artifacts?: Array<Record<string, unknown>> }>;
}

export interface LoadedRecipe {
  file: string;
  recipe: Recipe;
  lifecycle: Lifecycle;
}

const stepSchema = {
  anyOf: [
    { type: 'string', minLength: 1 },
    {
      type: 'object',
      additionalProperties: false,
      required: ['Script'],
      properties: {
        Script: { type: 'string', minLength: 1 },
        Timeout: { type: 'integer', minimum: 1 },
        Setenv: { type: 'object', additionalProperties: { type: 'string' } },
        RequiresPrivilege: { type: 'boolean' },
        Skipif: { type: 'string' },
      },
    },
  ],
};

const recipeSchema = {
  type: 'object',
  required: ['RecipeFormatVersion', 'ComponentName', 'ComponentVersion', 'Manifests'],
  properties: {
    RecipeFormatVersion: { const: '2020-01-25' },
    ComponentName: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$' },
    // Greengrass component versions are semantic versions (major.minor.patch).
    ComponentVersion: { type: 'string', pattern: '^\\d+\\.\\d+\\.\\d+(-[0-9A-Za-z.-]+)?(\\+[0-9A-Za-z.-]+)?$' },
    ComponentDescription: { type: 'string' },
    ComponentPublisher: { type: 'string' },
    ComponentType: { type: 'string' },
    ComponentConfiguration: {
      type: 'object',
      properties: { DefaultConfiguration: { type: 'object' } },
    },
    ComponentDependencies: {
      type: 'object',
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        properties: {
          VersionRequirement: { type: 'string' },
          DependencyType: { enum: ['HARD', 'SOFT'] },
        },
      },
    },
    Manifests: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['Lifecycle'],
        properties: {
          Name: { type: 'string' },
          Platform: { type: 'object', additionalProperties: { type: 'string' } },
          Lifecycle: {
            type: 'object',
            additionalProperties: false,
            properties: {
              Setenv: { type: 'object', additionalProperties: { type: 'string' } },
              Install: stepSchema,
              Startup: stepSchema,
              Run: stepSchema,
              Shutdown: stepSchema,
              Recover: stepSchema,
              errorResetTime: { type: 'number', exclusiveMinimum: 0 },
              bootstrap: { type: 'object' },
            },
          },
          Artifacts: { type: 'array', items: { type: 'object' } },
        },
      },
    },
  },
};

const validateRecipe = compileValidator<Recipe>(recipeSchema);

export class RecipeError extends Error {}

export function parseRecipe(text: string, file: string): LoadedRecipe {
  let document: unknown;
  try {
    document = file.endsWith('.json') ? JSON.parse(text) : YAML.parse(text);
  } catch (error) {
    throw new RecipeError(`${file}: not valid ${file.endsWith('.json') ? 'JSON' : 'YAML'}: ${(error as Error).message}`);
  }
  const checked = validateRecipe(document);
  if (!checked.ok) throw new RecipeError(`${file}: ${checked.reason}`);
  const recipe = checked.value;
  const manifest = recipe.Manifests.find((m) => !m.Platform?.os || m.Platform.os === 'linux' || m.Platform.os === '*');
  if (!manifest) throw new RecipeError(`${file}: /Manifests has no manifest for Platform.os "linux"`);
  return { file, recipe, lifecycle: manifest.Lifecycle };
}

/** Reads every *.yaml, *.yml and *.json recipe in a folder; the first bad one aborts the load. */
export function loadRecipes(folder: string): LoadedRecipe[] {
  const files = readdirSync(folder).filter((f) => /\.(ya?ml|json)$/.test(f)).sort();
  const loaded = files.map((f) => parseRecipe(readFileSync(join(folder, f), 'utf8'), join(folder, f)));
  const seen = new Map<string, string>();
  for (const { recipe, file } of loaded) {
    const previous = seen.get(recipe.ComponentName);
    if (previous) throw new RecipeError(`${file}: /ComponentName ${recipe.ComponentName} is also defined in ${previous}`);
    seen.set(recipe.ComponentName, file);
  }
  for (const { recipe, file } of loaded) {
    for (const [dependency, spec] of Object.entries(recipe.ComponentDependencies ?? {})) {
      if (!seen.has(dependency) && spec.DependencyType !== 'SOFT') {
        throw new RecipeError(`${file}: /ComponentDependencies/${dependency} names a component that has no recipe in ${folder}`);
      }
    }
  }
  return loaded;
}

/**
 * Every recipe file in a folder, several versions of one component allowed: the folder a local
 * deployment names as recipeDirectoryPath (the Greengrass CLI copies them all into the component
 * store). The first bad file aborts.
 */
export function loadRecipeVersions(folder: string): LoadedRecipe[] {
  const files = readdirSync(folder).filter((f) => /\.(ya?ml|json)$/.test(f)).sort();
  return files.map((f) => parseRecipe(readFileSync(join(folder, f), 'utf8'), join(folder, f)));
}

/** Semantic version order (major.minor.patch; a pre-release sorts before its release). */
export function compareVersions(a: string, b: string): number {
  const parse = (v: string) => {
    const [core, pre] = v.split('+')[0].split(/-(.*)/s);
    return { parts: core.split('.').map(Number), pre };
  };
  const x = parse(a);
  const y = parse(b);
  for (let i = 0; i < 3; i += 1) if ((x.parts[i] ?? 0) !== (y.parts[i] ?? 0)) return (x.parts[i] ?? 0) - (y.parts[i] ?? 0);
  if (x.pre === y.pre) return 0;
  if (x.pre === undefined) return 1;
  if (y.pre === undefined) return -1;
  return x.pre < y.pre ? -1 : 1;
}

export function stepOf(entry: LifecycleEntry | undefined): LifecycleStep | undefined {
  if (entry === undefined) return undefined;
  return typeof entry === 'string' ? { Script: entry } : entry;
}

/** What a recipe variable can resolve against, for one component or one of its dependencies. */
export interface InterpolationContext {
  component: string;
  thingName: string;
  rootPath: string;
  paths(component: string): { artifacts: string; decompressed: string; work: string } | undefined;
  configuration(component: string): Record<string, unknown> | undefined;
  /** Only a component's own variables and those of its direct dependencies may be referenced. */
  dependencies: string[];
}

/**
 * Replaces recipe variables ("Recipe variables" in the recipe reference):
 * {artifacts:path}, {artifacts:decompressedPath}, {work:path}, {configuration:/json/pointer},
 * the same prefixed with "<DependencyName>:", {iot:thingName} and {kernel:rootPath}.
 * An unknown or unresolvable variable is left in place, as the nucleus does, and reported.
 */
export function interpolate(text: string, context: InterpolationContext, unresolved: string[] = []): string {
  return text.replace(/\{([^{}]+)\}/g, (whole, inner: string) => {
    const value = resolveVariable(inner, context);
    if (value === undefined) {
      unresolved.push(whole);
      return whole;
    }
    return value;
  });
}

function resolveVariable(inner: string, context: InterpolationContext): string | undefined {
  if (inner === 'iot:thingName') return context.thingName;
  if (inner === 'kernel:rootPath') return context.rootPath;
  const parts = inner.split(':');
  let owner = context.component;
  let namespace: string;
  let key: string;
  if (parts.length === 3) {
    owner = parts[0];
    if (owner !== context.component && !context.dependencies.includes(owner)) return undefined;
    [, namespace, key] = parts;
  } else if (parts.length === 2) {
    [namespace, key] = parts;
  } else {
    return undefined;
  }
  if (namespace === 'configuration') {
    const value = jsonPointer(context.configuration(owner), key);
    if (value === undefined) return undefined;
    return typeof value === 'string' ? value : JSON.stringify(value);
  }
  const paths = context.paths(owner);
  if (!paths) return undefined;
  if (namespace === 'artifacts' && key === 'path') return paths.artifacts;
  if (namespace === 'artifacts' && key === 'decompressedPath') return paths.decompressed;
  if (namespace === 'work' && key === 'path') return paths.work;
  return undefined;
}

/** RFC 6901 JSON Pointer lookup ("/a/b"; "~1" is "/", "~0" is "~"). */
export function jsonPointer(document: unknown, pointer: string): unknown {
  if (pointer === '' || pointer === '/') return document;
  if (!pointer.startsWith('/')) return undefined;
  let current: unknown = document;
  for (const raw of pointer.slice(1).split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    // Own members only: "/toString" or "/__proto__" must not reach Object.prototype.
    if (current === null || typeof current !== 'object' || !Object.prototype.hasOwnProperty.call(current, key)) return undefined;
    current = (current as Record<string, unknown>)[key];
  }
  return current;
}

/** Deployment MERGE semantics: objects merge key by key; anything else replaces. */
export function mergeConfiguration(base: Record<string, unknown>, merge: Record<string, unknown>): Record<string, unknown> {
  const result: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(merge)) {
    const current = result[key];
    result[key] = isPlainObject(current) && isPlainObject(value) ? mergeConfiguration(current, value) : value;
  }
  return result;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Orders components so every HARD or SOFT dependency comes before its dependents. */
export function dependencyOrder(recipes: LoadedRecipe[]): LoadedRecipe[] {
  const byName = new Map(recipes.map((r) => [r.recipe.ComponentName, r]));
  const ordered: LoadedRecipe[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (loaded: LoadedRecipe, path: string[]): void => {
    const name = loaded.recipe.ComponentName;
    if (state.get(name) === 'done') return;
    if (state.get(name) === 'visiting') {
      throw new RecipeError(`${loaded.file}: /ComponentDependencies form a cycle: ${[...path, name].join(' -> ')}`);
    }
    state.set(name, 'visiting');
    for (const dependency of Object.keys(loaded.recipe.ComponentDependencies ?? {})) {
      const target = byName.get(dependency);
      if (target) visit(target, [...path, name]);
    }
    state.set(name, 'done');
    ordered.push(loaded);
  };
  for (const loaded of recipes) visit(loaded, []);
  return ordered;
}
