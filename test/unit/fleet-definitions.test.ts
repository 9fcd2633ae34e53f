import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import YAML from 'yaml';
import { HEALTH_SHADOW, healthShadowState } from '../../components/health-reporter/health-shadow';
import type { HealthMessage } from '../../components/health-reporter/reporter';
import healthSchema from '../../components/shared/schemas/health.v1.schema.json';

/**
 * The fleet definitions in cloud/fleet/ name fields of the named shadow "health" by string; a
 * renamed or retyped field in healthShadowState() would make a fleet metric silently count
 * nothing. These checks tie every name and type to what the devices really write.
 */
const FLEET_DIR = join(__dirname, '..', '..', '..', 'cloud', 'fleet');
const SHADOW_PREFIX = `shadow.name.${HEALTH_SHADOW}.reported.`;
/** Fields fleet indexing manages itself (registry and connectivity), which need no shadow. */
const MANAGED_FIELDS = new Set(['thingName', 'thingId', 'thingTypeName', 'registry.version', 'connectivity.connected', 'connectivity.timestamp', 'connectivity.disconnectReason']);

const T = Date.parse('2026-11-26T12:00:00Z');

const SAMPLE: HealthMessage = {
  schema: 'elevator.health/1',
  device: 'elevator-0001',
  time: new Date(T).toISOString(),
  status: 'degraded',
  reasons: ['MqttPublisher: backlog 120 s old'],
  components: {
    SensorAcquisition: { lastSeenSec: 2, metrics: { sampled: 10 } },
    StreamBuffer: { lastSeenSec: 1, metrics: { store: { backlogRecords: 42, streams: [{ oldestBacklogTime: T - 120_000 }] } } },
    MqttPublisher: { lastSeenSec: 3, metrics: {} },
    HealthReporter: { lastSeenSec: 0, metrics: {} },
  },
  system: { loadAvg1m: 0.5, cpuCount: 2, cpuBusyPercent: 12, memFreeBytes: 1000, memTotalBytes: 2000, diskFreeBytes: 5000, clockState: 'synced', clockLastStepMs: 0 },
};

/** The values a string field may take, where the health schema says so. */
const ENUMS: Record<string, readonly string[]> = {
  status: healthSchema.properties.status.enum,
  clockState: (healthSchema.properties.system.properties as Record<string, { enum?: string[] }>).clockState?.enum ?? [],
};

type Json = Record<string, unknown>;

function fleetFiles(): Array<{ name: string; document: Json }> {
  return readdirSync(FLEET_DIR)
    .filter((name) => /\.(json|ya?ml)$/.test(name))
    .map((name) => {
      const text = readFileSync(join(FLEET_DIR, name), 'utf8');
      return { name, document: (name.endsWith('.json') ? JSON.parse(text) : YAML.parse(text)) as Json };
    });
}

function templates(): Array<{ name: string; template: Json }> {
  return fleetFiles()
    .filter(({ document }) => typeof document.Resources === 'object')
    .map(({ name, document }) => ({ name, template: document }));
}

function indexingConfiguration(): { thingIndexingConfiguration: { namedShadowIndexingMode?: string; thingConnectivityIndexingMode?: string; thingIndexingMode: string; filter?: { namedShadowNames?: string[] }; customFields: Array<{ name: string; type: string }> } } {
  const found = fleetFiles().filter(({ document }) => 'thingIndexingConfiguration' in document);
  assert.equal(found.length, 1, 'exactly one indexing configuration in cloud/fleet/');
  return found[0].document as ReturnType<typeof indexingConfiguration>;
}

/** A template value as deployed with default parameters: plain strings, Fn::Sub and Ref of a parameter. */
function resolveValue(value: unknown, template: Json, where: string): string {
  const parameters = (template.Parameters ?? {}) as Record<string, { Default?: unknown }>;
  const parameter = (name: string): string => {
    assert.ok(name in parameters, `${where}: refers to parameter ${name}, which the template does not define`);
    assert.notEqual(parameters[name].Default, undefined, `${where}: parameter ${name} has no default to check with`);
    return String(parameters[name].Default);
  };
  if (typeof value === 'string' || typeof value === 'number') return String(value);
  if (value && typeof value === 'object' && 'Fn::Sub' in value) {
    const text = (value as { 'Fn::Sub': unknown })['Fn::Sub'];
    assert.equal(typeof text, 'string', `${where}: only the one-argument Fn::Sub is used`);
    return (text as string).replace(/\$\{([A-Za-z0-9]+)\}/g, (_m, name: string) => parameter(name));
  }
  if (value && typeof value === 'object' && 'Ref' in value) return parameter(String((value as { Ref: unknown }).Ref));
  assert.fail(`${where}: cannot resolve ${JSON.stringify(value)}`);
}

interface FieldUse {
  field: string;
  kind: 'numeric' | 'string' | 'exists';
  value?: string;
  where: string;
}

/** Every field a fleet query names, and how: compared as a number, matched as a string, or tested for presence. */
function queryFieldUses(query: string, where: string): FieldUse[] {
  const uses: FieldUse[] = [];
  const term = /([A-Za-z][A-Za-z0-9_.]*)\s*(?:(:)\s*(\[[^\]]*\]|[^\s)]+)|(<=|>=|<|>)\s*(-?[0-9.]+))/g;
  for (const match of query.matchAll(term)) {
    const [, field, colon, matchValue, comparison, number] = match;
    if (['AND', 'OR', 'NOT'].includes(field)) continue;
    if (comparison) {
      assert.ok(!Number.isNaN(Number(number)), `${where}: "${field} ${comparison} ${number}" compares with a non-number`);
      uses.push({ field, kind: 'numeric', where });
    } else if (colon) {
      if (matchValue === '*') uses.push({ field, kind: 'exists', where });
      else if (matchValue.startsWith('[')) uses.push({ field, kind: 'numeric', where });
      else uses.push({ field, kind: /^-?[0-9.]+$/.test(matchValue) ? 'numeric' : 'string', value: matchValue, where });
    }
  }
  assert.ok(uses.length > 0, `${where}: no field found in query "${query}"`);
  return uses;
}

function fleetMetrics(template: Json): Array<[string, Json]> {
  return Object.entries(template.Resources as Record<string, { Type: string; Properties: Json }>)
    .filter(([, resource]) => resource.Type === 'AWS::IoT::FleetMetric')
    .map(([name, resource]) => [name, resource.Properties]);
}

function allFieldUses(): FieldUse[] {
  const uses: FieldUse[] = [];
  for (const { name, template } of templates()) {
    for (const [logicalId, properties] of fleetMetrics(template)) {
      const where = `${name} ${logicalId}`;
      uses.push(...queryFieldUses(resolveValue(properties.QueryString, template, where), where));
      const aggregation = properties.AggregationType as { Name: string };
      uses.push({ field: String(properties.AggregationField), kind: aggregation.Name === 'Cardinality' ? 'exists' : 'numeric', where: `${where} AggregationField` });
    }
  }
  for (const custom of indexingConfiguration().thingIndexingConfiguration.customFields) {
    const kind = custom.type === 'Number' ? 'numeric' : custom.type === 'String' ? 'string' : 'exists';
    uses.push({ field: custom.name, kind, where: `indexing configuration customFields ${custom.name}` });
  }
  return uses;
}

describe('fleet monitoring definitions (cloud/fleet/)', () => {
  const state = healthShadowState(SAMPLE);

  test('every file parses, and there is an indexing configuration and at least one CloudFormation template', () => {
    const files = fleetFiles();
    assert.ok(files.length >= 2, `found ${files.map((f) => f.name).join(', ')}`);
    indexingConfiguration();
    assert.ok(templates().length >= 1);
  });

  test('the indexing configuration indexes the named shadow "health", connectivity and the registry', () => {
    const config = indexingConfiguration().thingIndexingConfiguration;
    assert.equal(config.thingIndexingMode, 'REGISTRY_AND_SHADOW');
    assert.equal(config.thingConnectivityIndexingMode, 'STATUS');
    assert.equal(config.namedShadowIndexingMode, 'ON');
    assert.deepEqual(config.filter?.namedShadowNames, [HEALTH_SHADOW]);
  });

  test('every shadow field named in a query, an aggregation or a custom field exists in healthShadowState() with the right type', () => {
    const uses = allFieldUses();
    for (const use of uses) {
      if (!use.field.startsWith(SHADOW_PREFIX)) {
        assert.ok(MANAGED_FIELDS.has(use.field), `${use.where}: ${use.field} is neither a health shadow field nor a managed fleet indexing field`);
        continue;
      }
      const name = use.field.slice(SHADOW_PREFIX.length);
      assert.ok(name in state, `${use.where}: ${name} is not written by healthShadowState() (it writes ${Object.keys(state).join(', ')})`);
      const actual = typeof state[name];
      if (use.kind === 'numeric') assert.equal(actual, 'number', `${use.where}: ${name} is used as a number but the shadow holds a ${actual}`);
      if (use.kind === 'string') {
        assert.equal(actual, 'string', `${use.where}: ${name} is matched as a string but the shadow holds a ${actual}`);
        if (use.value !== undefined && ENUMS[name]) {
          assert.ok(ENUMS[name].includes(use.value), `${use.where}: ${name} is never "${use.value}" (values: ${ENUMS[name].join(', ')})`);
        }
      }
    }
  });

  test('every shadow field a fleet metric uses is a custom field of the indexing configuration, so it is typed in the index', () => {
    const custom = new Set(indexingConfiguration().thingIndexingConfiguration.customFields.map((c) => c.name));
    for (const use of allFieldUses()) {
      if (use.field.startsWith(SHADOW_PREFIX)) assert.ok(custom.has(use.field), `${use.where}: ${use.field} is not in customFields`);
    }
  });

  test('fleet metrics are well-formed: period a multiple of 60 in 60..86400, a known aggregation, the AWS_Things index', () => {
    for (const { name, template } of templates()) {
      for (const [logicalId, properties] of fleetMetrics(template)) {
        const where = `${name} ${logicalId}`;
        const period = Number(resolveValue(properties.Period, template, where));
        assert.ok(period >= 60 && period <= 86_400 && period % 60 === 0, `${where}: period ${period}`);
        const aggregation = properties.AggregationType as { Name: string; Values: string[] };
        assert.ok(['Statistics', 'Percentiles', 'Cardinality'].includes(aggregation.Name), `${where}: aggregation ${aggregation.Name}`);
        assert.equal(properties.IndexName, 'AWS_Things', where);
        assert.match(resolveValue(properties.MetricName, template, where), /^[a-zA-Z0-9_.-]+$/, `${where}: metric name pattern`);
      }
    }
  });

  test('each alarm watches a fleet metric defined in the same template, with a statistic that metric emits, and notifies the topic', () => {
    for (const { name, template } of templates()) {
      const metrics = new Map(fleetMetrics(template));
      const alarms = Object.entries(template.Resources as Record<string, { Type: string; Properties: Json }>).filter(([, r]) => r.Type === 'AWS::CloudWatch::Alarm');
      assert.ok(alarms.length > 0, `${name}: no alarms`);
      for (const [logicalId, { Properties: alarm }] of alarms) {
        const where = `${name} ${logicalId}`;
        const target = (alarm.MetricName as { Ref?: string }).Ref;
        assert.ok(target !== undefined && metrics.has(target), `${where}: MetricName must be a Ref to a fleet metric of this template, got ${JSON.stringify(alarm.MetricName)}`);
        assert.equal(alarm.Namespace, 'IoTFleetMetrics', where);
        const dimension = (alarm.Dimensions as Array<{ Name: string; Value: string }>).find((d) => d.Name === 'AggregationType');
        const emitted = (metrics.get(target)!.AggregationType as { Values: string[] }).Values;
        assert.ok(dimension && emitted.includes(dimension.Value), `${where}: AggregationType ${dimension?.Value} is not one of ${emitted.join(', ')}`);
        assert.equal(resolveValue(alarm.Period, template, where), resolveValue(metrics.get(target)!.Period, template, where), `${where}: alarm period differs from its metric's`);
        resolveValue(alarm.Threshold, template, where);
        const topic = (template.Parameters as Json).AlarmTopicArn;
        assert.ok(topic, `${name}: an AlarmTopicArn parameter`);
        assert.deepEqual(alarm.AlarmActions, [{ Ref: 'AlarmTopicArn' }], where);
      }
    }
  });

  test('nothing in cloud/fleet/ points at Fleet Hub, which AWS discontinued', () => {
    for (const name of readdirSync(FLEET_DIR)) assert.doesNotMatch(readFileSync(join(FLEET_DIR, name), 'utf8'), /fleet ?hub/i, name);
  });
});
