/**
 * The breaking-change checker (scripts/contracts.ts). Each case takes a real schema from
 * components/shared/schemas, changes a deep copy the way a careless edit would, and expects the
 * checker to name exactly that change: kind, file and JSON pointer.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../helpers/runtime-fixture';
import { compareSchemaSets, diffSchemaSets, generateTypes, snapshotText, typeNameOf, type Breaking, type SchemaSet } from '../../scripts/contracts';

const SCHEMAS_DIR = join(PROJECT_ROOT, 'components', 'shared', 'schemas');
const RELEASED_FILE = join(SCHEMAS_DIR, 'released.json');
const GENERATED_FILE = join(PROJECT_ROOT, 'components', 'shared', 'contracts.generated.ts');
const CLI = join(PROJECT_ROOT, 'dist', 'scripts', 'contracts.js');

// Schemas are plain JSON; `any` lets a test reach into one the way an editor would.
type Json = any;

function realSchema(file: string): Json {
  return JSON.parse(readFileSync(join(SCHEMAS_DIR, file), 'utf8'));
}

function realSchemaSet(): SchemaSet {
  const set: SchemaSet = {};
  for (const file of readdirSync(SCHEMAS_DIR).filter((f) => f.endsWith('.schema.json'))) set[file] = realSchema(file);
  return set;
}

/** The real schema as released, and a deep copy changed by edit as the current file. */
function edited(file: string, edit: (schema: Json) => void, base: (schema: Json) => void = () => {}): { released: SchemaSet; current: SchemaSet } {
  const released = realSchema(file);
  base(released);
  const current = structuredClone(released);
  edit(current);
  return { released: { [file]: released }, current: { [file]: current } };
}

function summary(changes: Breaking[]): Array<Pick<Breaking, 'file' | 'pointer' | 'kind'>> {
  return changes.map(({ file, pointer, kind }) => ({ file, pointer, kind }));
}

/** Exactly the expected breaking changes, each with a message a person can act on. */
function assertBreaks(file: string, edit: (schema: Json) => void, expected: Array<[pointer: string, kind: Breaking['kind']]>, base?: (schema: Json) => void): Breaking[] {
  const { released, current } = edited(file, edit, base);
  const breaking = compareSchemaSets(released, current);
  assert.deepEqual(summary(breaking), expected.map(([pointer, kind]) => ({ file, pointer, kind })), JSON.stringify(breaking, null, 2));
  for (const change of breaking) assert.ok(change.message.length > 20, `a message for ${change.pointer}`);
  return breaking;
}

describe('breaking changes', () => {
  test('a released schema file that is gone', () => {
    const released = realSchemaSet();
    const current = { ...released };
    delete current['door-cycle.v1.schema.json'];
    const breaking = compareSchemaSets(released, current);
    assert.deepEqual(summary(breaking), [{ file: 'door-cycle.v1.schema.json', pointer: '', kind: 'schema-removed' }]);
    assert.match(breaking[0].message, /door-cycle\.v1\.schema\.json/);
  });

  test('a removed property', () => {
    assertBreaks(
      'run.v1.schema.json',
      (s) => {
        delete s.properties.levelingErrorMm;
        s.required = s.required.filter((name: string) => name !== 'levelingErrorMm');
      },
      [['/properties/levelingErrorMm', 'property-removed']],
    );
  });

  test('a renamed property is a removal plus a new required field, and the message suggests the rename', () => {
    const [removed, required] = assertBreaks(
      'door-cycle.v1.schema.json',
      (s) => {
        s.properties.dwellTimeMs = s.properties.dwellMs;
        delete s.properties.dwellMs;
        s.required = s.required.map((name: string) => (name === 'dwellMs' ? 'dwellTimeMs' : name));
      },
      [
        ['/properties/dwellMs', 'property-removed'],
        ['/required', 'required-added'],
      ],
    );
    assert.match(removed.message, /"dwellMs" removed \(renamed to "dwellTimeMs"\?/);
    assert.match(required.message, /"dwellTimeMs" is now required/);
  });

  test('a removed property deep inside nested objects', () => {
    assertBreaks('door-cycle.v1.schema.json', (s) => delete s.properties.quality.properties.outOfRangeSamples, [
      ['/properties/quality/properties/outOfRangeSamples', 'property-removed'],
    ]);
  });

  test('a narrowed type: ["number","null"] to "number"', () => {
    const [change] = assertBreaks('raw-sample.v1.schema.json', (s) => (s.properties.positionM.type = 'number'), [['/properties/positionM/type', 'type-narrowed']]);
    assert.match(change.message, /null values/);
  });

  test('a narrowed type: "number" to "integer"', () => {
    assertBreaks('door-cycle.v1.schema.json', (s) => (s.properties.openingMs.type = 'integer'), [['/properties/openingMs/type', 'type-narrowed']]);
  });

  test('a narrowed type: a type added where there was none', () => {
    assertBreaks('quarantine.v1.schema.json', (s) => (s.properties.value.type = 'object'), [['/properties/value/type', 'type-narrowed']]);
  });

  const narrowedConstraints: Array<{ name: string; file: string; edit: (s: Json) => void; pointer: string }> = [
    { name: 'minimum raised', file: 'door-cycle.v1.schema.json', edit: (s) => (s.properties.floor.minimum = 0), pointer: '/properties/floor/minimum' },
    { name: 'exclusiveMinimum added', file: 'motor.v1.schema.json', edit: (s) => (s.properties.currentA.exclusiveMinimum = 0), pointer: '/properties/currentA/exclusiveMinimum' },
    { name: 'maximum lowered', file: 'run.v1.schema.json', edit: (s) => (s.properties.peakSpeedMps.maximum = 10), pointer: '/properties/peakSpeedMps/maximum' },
    { name: 'exclusiveMaximum added', file: 'motor.v1.schema.json', edit: (s) => (s.properties.temperatureC.exclusiveMaximum = 150), pointer: '/properties/temperatureC/exclusiveMaximum' },
    { name: 'minLength raised', file: 'quarantine.v1.schema.json', edit: (s) => (s.properties.reason.minLength = 5), pointer: '/properties/reason/minLength' },
    { name: 'maxLength lowered', file: 'quarantine.v1.schema.json', edit: (s) => (s.properties.stream.maxLength = 100), pointer: '/properties/stream/maxLength' },
    { name: 'minItems raised', file: 'backfill.v1.schema.json', edit: (s) => (s.properties.ranges.minItems = 2), pointer: '/properties/ranges/minItems' },
    { name: 'maxItems lowered', file: 'ack.v1.schema.json', edit: (s) => (s.properties.gaps.maxItems = 50), pointer: '/properties/gaps/maxItems' },
    { name: 'minimum raised inside items of items', file: 'ack.v1.schema.json', edit: (s) => (s.properties.gaps.items.items.minimum = 2), pointer: '/properties/gaps/items/items/minimum' },
    { name: 'pattern changed', file: 'envelope.v1.schema.json', edit: (s) => (s.properties.device.pattern = '^[A-Za-z0-9]{1,64}$'), pointer: '/properties/device/pattern' },
    { name: 'pattern added', file: 'heartbeat.v1.schema.json', edit: (s) => (s.properties.component.pattern = '^[A-Z][A-Za-z]+$'), pointer: '/properties/component/pattern' },
    { name: 'format added', file: 'heartbeat.v1.schema.json', edit: (s) => (s.properties.time.format = 'date-time'), pointer: '/properties/time/format' },
    { name: 'format changed', file: 'ack.v1.schema.json', edit: (s) => (s.properties.issuedAt.format = 'date'), pointer: '/properties/issuedAt/format' },
    { name: 'additionalProperties from absent to false', file: 'health.v1.schema.json', edit: (s) => (s.additionalProperties = false), pointer: '/additionalProperties' },
    { name: 'additionalProperties from absent to a schema', file: 'heartbeat.v1.schema.json', edit: (s) => (s.additionalProperties = { type: 'string' }), pointer: '/additionalProperties' },
    {
      name: 'additionalProperties set to false inside an additionalProperties schema',
      file: 'health.v1.schema.json',
      edit: (s) => (s.properties.components.additionalProperties.additionalProperties = false),
      pointer: '/properties/components/additionalProperties/additionalProperties',
    },
    { name: 'uniqueItems added', file: 'health.v1.schema.json', edit: (s) => (s.properties.reasons.uniqueItems = true), pointer: '/properties/reasons/uniqueItems' },
  ];
  for (const c of narrowedConstraints) {
    test(`a narrowed constraint: ${c.name}`, () => {
      assertBreaks(c.file, c.edit, [[c.pointer, 'constraint-narrowed']]);
    });
  }

  test('a narrowed type inside an additionalProperties schema', () => {
    assertBreaks('health.v1.schema.json', (s) => (s.properties.components.additionalProperties.properties.lastSeenSec.type = 'number'), [
      ['/properties/components/additionalProperties/properties/lastSeenSec/type', 'type-narrowed'],
    ]);
  });

  test('a new required field inside the then branch of if/then/else', () => {
    assertBreaks('heartbeat.v1.schema.json', (s) => s.then.properties.metrics.properties.store.properties.streams.items.required.push('appended'), [
      ['/then/properties/metrics/properties/store/properties/streams/items/required', 'required-added'],
    ]);
  });

  test('a changed if condition', () => {
    assertBreaks('heartbeat.v1.schema.json', (s) => (s.if.properties.component.const = 'HealthReporter'), [['/if', 'constraint-narrowed']]);
  });

  test('a narrowed constraint inside one branch of anyOf, allOf and oneOf', () => {
    for (const keyword of ['anyOf', 'allOf', 'oneOf']) {
      assertBreaks(
        'motor.v1.schema.json',
        (s) => (s.properties.currentA[keyword][0].maximum = 400),
        [[`/properties/currentA/${keyword}/0/maximum`, 'constraint-narrowed']],
        (s) => {
          const { type, minimum, maximum } = s.properties.currentA;
          s.properties.currentA = { [keyword]: [{ type, minimum, maximum }, { type: 'null' }] };
        },
      );
    }
  });

  test('a removed anyOf branch', () => {
    assertBreaks(
      'motor.v1.schema.json',
      (s) => s.properties.currentA.anyOf.pop(),
      [['/properties/currentA/anyOf/1', 'constraint-narrowed']],
      (s) => (s.properties.currentA = { anyOf: [{ type: 'number' }, { type: 'null' }] }),
    );
  });

  test('a new required field', () => {
    const [change] = assertBreaks('envelope.v1.schema.json', (s) => s.required.push('dataSchema'), [['/required', 'required-added']]);
    assert.match(change.message, /"dataSchema" is now required/);
  });

  test('an enum value removed', () => {
    const [change] = assertBreaks('motor.v1.schema.json', (s) => (s.properties.carState.enum = ['idle', 'moving']), [['/properties/carState/enum', 'enum-value-removed']]);
    assert.match(change.message, /"door" removed/);
  });

  test('an enum value renamed', () => {
    const [change] = assertBreaks(
      'loss.v1.schema.json',
      (s) => (s.properties.reason.enum = s.properties.reason.enum.map((v: string) => (v === 'unknown' ? 'unexplained' : v))),
      [['/properties/reason/enum', 'enum-value-removed']],
    );
    assert.match(change.message, /"unknown" removed \(renamed to "unexplained"\?/);
  });

  test('an enum value removed deep inside array items', () => {
    assertBreaks('run.v1.schema.json', (s) => s.properties.quality.properties.stuckSignals.items.enum.pop(), [
      ['/properties/quality/properties/stuckSignals/items/enum', 'enum-value-removed'],
    ]);
  });

  test('a changed const', () => {
    const [change] = assertBreaks('ack.v1.schema.json', (s) => (s.properties.schema.const = 'elevator.ack/2'), [['/properties/schema/const', 'const-changed']]);
    assert.match(change.message, /"elevator\.ack\/1" to "elevator\.ack\/2"/);
  });

  /** detectedBy written as values that carry their own description. */
  function describedDetectedBy(s: Json): void {
    s.properties.detectedBy = {
      oneOf: [
        { const: 'acquisition', description: 'SensorAcquisition refused it on the device.' },
        { const: 'cloud', description: 'The cloud ingest refused it.' },
      ],
    };
  }

  test('a changed description of an existing described value', () => {
    const [change] = assertBreaks(
      'quarantine.v1.schema.json',
      (s) => (s.properties.detectedBy.oneOf[1].description = 'StreamBuffer refused it before publishing.'),
      [['/properties/detectedBy/oneOf/1/description', 'value-meaning-changed']],
      describedDetectedBy,
    );
    assert.match(change.message, /"cloud"/);
  });

  test('a removed described value', () => {
    assertBreaks('quarantine.v1.schema.json', (s) => s.properties.detectedBy.oneOf.shift(), [['/properties/detectedBy/oneOf/0', 'enum-value-removed']], describedDetectedBy);
  });

  test('a change the checker cannot judge counts as breaking', () => {
    assertBreaks('motor.v1.schema.json', (s) => (s.properties.currentA.not = { const: 0 }), [['/properties/currentA/not', 'unjudged-change']]);
  });
});

describe('additive changes', () => {
  function assertAdditive(released: SchemaSet, current: SchemaSet, expectedKinds: string[]): void {
    const comparison = diffSchemaSets(released, current);
    assert.deepEqual(comparison.breaking, []);
    assert.deepEqual(comparison.additive.map((c) => c.kind).sort(), [...expectedKinds].sort(), JSON.stringify(comparison.additive, null, 2));
  }
  const file = 'door-cycle.v1.schema.json';

  test('a new optional property', () => {
    const { released, current } = edited(file, (s) => (s.properties.landingDoor = { enum: ['front', 'rear'] }));
    assertAdditive(released, current, ['property-added']);
  });

  test('a new schema file', () => {
    const released = realSchemaSet();
    const current = { ...released, 'door-cycle.v2.schema.json': { ...realSchema(file), $id: 'https://elevator.example/schemas/door-cycle-2.json' } };
    assertAdditive(released, current, ['schema-added']);
  });

  test('a widened type: "integer" to "number" and "number" to ["number","null"]', () => {
    const { released, current } = edited('raw-sample.v1.schema.json', (s) => (s.properties.t.type = 'number'));
    assertAdditive(released, current, ['type-widened']);
    const motor = edited('motor.v1.schema.json', (s) => (s.properties.currentA.type = ['number', 'null']));
    assertAdditive(motor.released, motor.current, ['type-widened']);
  });

  test('a new enum value', () => {
    const { released, current } = edited('motor.v1.schema.json', (s) => s.properties.carState.enum.push('inspection'));
    assertAdditive(released, current, ['enum-value-added']);
  });

  test('a raised maxLength and a lowered minimum', () => {
    const { released, current } = edited('quarantine.v1.schema.json', (s) => (s.properties.stream.maxLength = 400));
    assertAdditive(released, current, ['constraint-widened']);
    const doorCycle = edited(file, (s) => (s.properties.floor.minimum = -50));
    assertAdditive(doorCycle.released, doorCycle.current, ['constraint-widened']);
  });

  test('changed description and title text outside enum values', () => {
    const { released, current } = edited(file, (s) => {
      s.title = 'Door cycle (v1)';
      s.properties.floor.description = 'Landing index, 0 = lowest landing served.';
    });
    assertAdditive(released, current, ['annotation-changed', 'annotation-changed']);
  });
});

describe('the committed contract files', () => {
  test('the current schemas have no breaking change against released.json', () => {
    const released = JSON.parse(readFileSync(RELEASED_FILE, 'utf8'));
    assert.deepEqual(Object.keys(released).sort(), Object.keys(realSchemaSet()).sort(), 'released.json holds every schema file');
    assert.deepEqual(compareSchemaSets(released, realSchemaSet()), []);
  });

  test('released.json is written with sorted keys, 2-space indentation and a trailing newline', () => {
    const text = snapshotText({ 'b.v1.schema.json': { type: 'object', $id: 'b' }, 'a.v1.schema.json': { required: ['z', 'a'] } });
    assert.equal(text, '{\n  "a.v1.schema.json": {\n    "required": [\n      "z",\n      "a"\n    ]\n  },\n  "b.v1.schema.json": {\n    "$id": "b",\n    "type": "object"\n  }\n}\n');
  });

  test('contracts.generated.ts is what the schemas generate: one type per schema file, with the banner', async () => {
    const generated = await generateTypes(realSchemaSet());
    assert.equal(readFileSync(GENERATED_FILE, 'utf8'), generated);
    assert.match(generated, /GENERATED by `npm run contracts:types` from components\/shared\/schemas/);
    const declared = [...generated.matchAll(/^export (?:interface|type) (\w+)/gm)].map((m) => m[1]).sort();
    assert.deepEqual(declared, Object.keys(realSchemaSet()).map(typeNameOf).sort());
    assert.ok(declared.includes('DoorCycleV1') && declared.includes('EnvelopeV1') && declared.includes('RawSampleV1'), declared.join(', '));
  });
});

describe('the CLI', () => {
  function run(...args: string[]) {
    // The cwd is elsewhere on purpose: the CLI finds its files from the project root.
    const result = spawnSync(process.execPath, [CLI, ...args], { cwd: tmpdir(), encoding: 'utf8', timeout: 60_000 });
    return { status: result.status, output: `${result.stdout}${result.stderr}` };
  }

  /** A temporary copy of the schemas, the snapshot and the generated types, changed by edit. */
  function withCopy(edit: (dir: string) => void, body: (args: string[]) => void): void {
    const dir = mkdtempSync(join(tmpdir(), 'contracts-'));
    try {
      cpSync(SCHEMAS_DIR, join(dir, 'schemas'), { recursive: true });
      cpSync(GENERATED_FILE, join(dir, 'contracts.generated.ts'));
      edit(dir);
      body(['--schemas', join(dir, 'schemas'), '--released', join(dir, 'schemas', 'released.json'), '--generated', join(dir, 'contracts.generated.ts')]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  test('check passes on the real tree', () => {
    const { status, output } = run('check');
    assert.equal(status, 0, output);
    assert.match(output, new RegExp(`${Object.keys(realSchemaSet()).length} schemas compatible`));
  });

  test('check fails on a copy with a breaking change, naming the file and the pointer', () => {
    withCopy(
      (dir) => {
        const path = join(dir, 'schemas', 'run.v1.schema.json');
        const schema = JSON.parse(readFileSync(path, 'utf8'));
        schema.properties.peakSpeedMps.maximum = 10;
        writeFileSync(path, JSON.stringify(schema, null, 2));
      },
      (args) => {
        const { status, output } = run('check', ...args);
        assert.equal(status, 1, output);
        assert.match(output, /run\.v1\.schema\.json#\/properties\/peakSpeedMps\/maximum/);
        assert.match(output, /lowered from 30 to 10/);
      },
    );
  });

  test('check fails when the generated types are stale', () => {
    withCopy(
      (dir) => writeFileSync(join(dir, 'contracts.generated.ts'), `${readFileSync(GENERATED_FILE, 'utf8')}\n// edited by hand\n`),
      (args) => {
        const { status, output } = run('check', ...args);
        assert.equal(status, 1, output);
        assert.match(output, /contracts\.generated\.ts differs from what the schemas generate: run `npm run contracts:types`/);
      },
    );
  });

  test('release refuses a breaking change, and writes the snapshot for an additive one', () => {
    withCopy(
      (dir) => {
        const path = join(dir, 'schemas', 'motor.v1.schema.json');
        const schema = JSON.parse(readFileSync(path, 'utf8'));
        schema.properties.carState.enum = ['idle', 'moving'];
        writeFileSync(path, JSON.stringify(schema, null, 2));
      },
      (args) => {
        const released = args[args.indexOf('--released') + 1];
        const before = readFileSync(released, 'utf8');
        const refused = run('release', ...args);
        assert.equal(refused.status, 1, refused.output);
        assert.match(refused.output, /motor\.v1\.schema\.json#\/properties\/carState\/enum/);
        assert.equal(readFileSync(released, 'utf8'), before, 'a refused release leaves the snapshot alone');

        const path = join(args[args.indexOf('--schemas') + 1], 'motor.v1.schema.json');
        const schema = JSON.parse(readFileSync(path, 'utf8'));
        schema.properties.carState.enum = ['idle', 'moving', 'door', 'inspection'];
        writeFileSync(path, JSON.stringify(schema, null, 2));
        const accepted = run('release', ...args);
        assert.equal(accepted.status, 0, accepted.output);
        assert.match(accepted.output, /1 changed/);
        assert.deepEqual(JSON.parse(readFileSync(released, 'utf8'))['motor.v1.schema.json'].properties.carState.enum, ['idle', 'moving', 'door', 'inspection']);
      },
    );
  });

  test('bad usage exits 2 with the usage line', () => {
    for (const args of [[], ['publish'], ['check', '--no-such-option']]) {
      const { status, output } = run(...args);
      assert.equal(status, 2, `${args.join(' ')}: ${output}`);
      assert.match(output, /^usage: node dist\/scripts\/contracts\.js check\|release\|types/m);
    }
  });
});
