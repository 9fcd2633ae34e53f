import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Ajv, { type ValidateFunction } from 'ajv';
import YAML from 'yaml';
import { PROJECT_ROOT, packageComponents, type PackagedComponent } from '../../scripts/package';

/**
 * The GDK CLI validates recipes and gdk-config.json with Python's jsonschema (Draft 7), after
 * lower-casing every key of the recipe. These checks do the same with ajv against the GDK's own
 * schemas, kept outside the repository at ../shared/reference/gdk/.
 */
// GDK_SCHEMA_DIR points elsewhere (or nowhere, to see the skip).
const SCHEMA_DIR = process.env.GDK_SCHEMA_DIR ?? join(PROJECT_ROOT, '..', 'shared', 'reference', 'gdk');
const MISSING = !existsSync(join(SCHEMA_DIR, 'recipe_schema.json')) || !existsSync(join(SCHEMA_DIR, 'config_schema.json'));
if (MISSING) {
  console.warn(`\n*** SKIPPED gdk-schemas: the GDK schemas are not at ${SCHEMA_DIR} (recipe_schema.json, config_schema.json). ` + 'They are reference files kept next to the repository, not in it; without them no recipe or gdk-config.json is checked against the GDK. ***\n');
}

/**
 * The schemas are written for Python's re: "(?i)" at the start means case-insensitive, and
 * character classes like [a-zA-Z0-9-_.] are fine there but invalid in a JavaScript /u pattern.
 * Like re.search, a pattern is unanchored unless it says so, as in ajv.
 */
function pythonRegExp(pattern: string): RegExp {
  return pattern.startsWith('(?i)') ? new RegExp(pattern.slice(4), 'i') : new RegExp(pattern);
}
pythonRegExp.code = 'pythonRegExp';

/** What the GDK does before validating a recipe: every key, at every depth, lower-cased. */
export function lowerCaseKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(lowerCaseKeys);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k.toLowerCase(), lowerCaseKeys(v)]));
  return value;
}

function describeErrors(validate: ValidateFunction): string {
  return (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}`).join('; ');
}

// Counted as a skipped test, with the reason, in the runner's summary.
if (MISSING) test('GDK schemas: generated recipes and every gdk-config.json', { skip: `GDK schemas not found at ${SCHEMA_DIR}` }, () => {});

describe('GDK schemas: generated recipes and every gdk-config.json', { skip: MISSING }, () => {
  let out: string;
  let packaged: PackagedComponent[];
  let validateRecipe: ValidateFunction;
  let validateConfig: ValidateFunction;

  before(() => {
    // A separate instance, strict: false: third-party schemas use keywords (dependentRequired,
    // "anyof") that Draft 7 ignores, as Python's jsonschema does.
    const ajv = new Ajv({ strict: false, allErrors: true, code: { regExp: pythonRegExp } });
    validateRecipe = ajv.compile(JSON.parse(readFileSync(join(SCHEMA_DIR, 'recipe_schema.json'), 'utf8')));
    validateConfig = ajv.compile(JSON.parse(readFileSync(join(SCHEMA_DIR, 'config_schema.json'), 'utf8')));
    out = mkdtempSync(join(tmpdir(), 'gdk-schemas-'));
    packaged = packageComponents({ outDir: out, bucket: 'elevator-artifacts-test', prefix: 'components/' });
  });
  after(() => out && rmSync(out, { recursive: true, force: true }));

  test('every generated recipe, and every GDK project recipe.yaml, is valid', () => {
    const files = [...readdirSync(join(out, 'recipes')).map((f) => join(out, 'recipes', f)), ...packaged.map((p) => join(p.gdkProjectDir, 'recipe.yaml'))];
    assert.equal(files.length, 2 * packaged.length);
    for (const file of files) {
      const recipe = lowerCaseKeys(YAML.parse(readFileSync(file, 'utf8')));
      assert.ok(validateRecipe(recipe), `${file}: ${describeErrors(validateRecipe)}`);
    }
  });

  test('the hand-written recipes in recipes/ are valid too', () => {
    for (const file of readdirSync(join(PROJECT_ROOT, 'recipes'))) {
      const recipe = lowerCaseKeys(YAML.parse(readFileSync(join(PROJECT_ROOT, 'recipes', file), 'utf8')));
      assert.ok(validateRecipe(recipe), `recipes/${file}: ${describeErrors(validateRecipe)}`);
    }
  });

  test('gdk-config.json and every generated per-component gdk-config.json are valid', () => {
    const files = [join(PROJECT_ROOT, 'gdk-config.json'), ...packaged.map((p) => join(p.gdkProjectDir, 'gdk-config.json'))];
    for (const file of files) assert.ok(validateConfig(JSON.parse(readFileSync(file, 'utf8'))), `${file}: ${describeErrors(validateConfig)}`);
  });

  test('the validators do reject what the GDK rejects', () => {
    const recipe = YAML.parse(readFileSync(packaged[0].recipePath, 'utf8'));
    recipe.Manifests[0].Artifacts[0].Permission.Read = 'EVERYONE';
    assert.equal(validateRecipe(lowerCaseKeys(recipe)), false);
    assert.match(describeErrors(validateRecipe), /permission\/read/);
    // Lower-case, as the GDK sees it, "OWNER" in any case is fine: the pattern is (?i).
    recipe.Manifests[0].Artifacts[0].Permission.Read = 'owner';
    assert.equal(validateRecipe(lowerCaseKeys(recipe)), true, describeErrors(validateRecipe));
    // Unknown top-level keys are not allowed.
    assert.equal(validateRecipe(lowerCaseKeys({ ...recipe, ComponentVersionX: '1' })), false);

    const config = JSON.parse(readFileSync(join(packaged[0].gdkProjectDir, 'gdk-config.json'), 'utf8'));
    assert.equal(validateConfig({ ...config, component: { ...config.component, 'com.example.Second': config.component[packaged[0].name] } }), false, 'the GDK takes one component per gdk-config.json');
    const noCommand = structuredClone(config);
    delete noCommand.component[packaged[0].name].build.custom_build_command;
    assert.equal(validateConfig(noCommand), false, 'a custom build needs custom_build_command');
  });
});
