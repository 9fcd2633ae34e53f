/**
 * Creates the fleet deployment in AWS IoT Greengrass: deploy/deployment.yaml for one thing group,
 * with our four components at package.json's version. (scripts/deploy.ts is the other one: local
 * deployments against the local runtime.)
 *
 * Before anything is sent, every configuration merge of our components is checked the way the
 * device will check it (recipe defaults, merge applied, the component's own schema), so a typo
 * fails here rather than on the first devices of the rollout.
 *
 * usage: node dist/scripts/deploy-fleet.js --target-arn arn:aws:iot:<region>:<account>:thinggroup/<name>
 *          [--dry-run] [--name NAME] [--template deploy/deployment.yaml] [--nucleus-version X.Y.Z]
 *          [--region R] [--endpoint URL]
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import Ajv from 'ajv';
import YAML from 'yaml';
import { CreateDeploymentCommand, GreengrassV2Client, type ComponentDeploymentSpecification, type CreateDeploymentCommandInput } from '@aws-sdk/client-greengrassv2';
import { healthReporterConfigSchema } from '../components/health-reporter/config';
import { mqttPublisherConfigSchema } from '../components/mqtt-publisher/config';
import { sensorAcquisitionConfigSchema } from '../components/sensor-acquisition/config';
import { streamBufferConfigSchema } from '../components/stream-buffer/config';
import { PROJECT_ROOT, readProjectVersion, readSourceRecipes } from './package';
import { componentSettings, nodeOptionsProblem } from '../components/shared/deployment-hooks';

export class DeployError extends Error {}

export const DEFAULT_TEMPLATE = join(PROJECT_ROOT, 'deploy', 'deployment.yaml');
const OUR_PREFIX = 'com.elevator.';
const THING_GROUP_ARN = /^arn:aws[a-z-]*:iot:([a-z0-9-]+):(\d{12}):thinggroup\/([A-Za-z0-9:_-]{1,128})$/;

/** The schema each component validates its configuration with, by component name. */
export const COMPONENT_CONFIG_SCHEMAS: Record<string, object> = {
  'com.elevator.StreamBuffer': streamBufferConfigSchema,
  'com.elevator.SensorAcquisition': sensorAcquisitionConfigSchema,
  'com.elevator.MqttPublisher': mqttPublisherConfigSchema,
  'com.elevator.HealthReporter': healthReporterConfigSchema,
};

interface TemplateComponent {
  componentVersion?: string;
  configurationUpdate?: { merge?: unknown; reset?: string[] };
  runWith?: ComponentDeploymentSpecification['runWith'];
}

interface Template {
  deploymentPolicies?: CreateDeploymentCommandInput['deploymentPolicies'];
  iotJobConfiguration?: CreateDeploymentCommandInput['iotJobConfiguration'];
  components?: Record<string, TemplateComponent>;
}

export interface DeploymentOptions {
  targetArn: string;
  template?: string;
  name?: string;
  nucleusVersion?: string;
  root?: string;
}

export function parseThingGroupArn(arn: string): { region: string; account: string; group: string } {
  const match = THING_GROUP_ARN.exec(arn);
  if (!match) throw new DeployError(`--target-arn must be a thing group ARN, arn:aws:iot:<region>:<account>:thinggroup/<name>; got "${arn}"`);
  return { region: match[1], account: match[2], group: match[3] };
}

/** Greengrass's merge: objects merge key by key, anything else (arrays too) replaces. */
function deepMerge(base: unknown, patch: unknown): unknown {
  if (!isObject(base) || !isObject(patch)) return structuredClone(patch);
  const out: Record<string, unknown> = { ...structuredClone(base) };
  for (const [key, value] of Object.entries(patch)) out[key] = key in out ? deepMerge(out[key], value) : structuredClone(value);
  return out;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Every violation of every merge of our components, as "component: message" lines. */
export function checkMerges(template: Template, root = PROJECT_ROOT): string[] {
  const problems: string[] = [];
  const defaults = new Map(readSourceRecipes(root).map(({ recipe }) => [recipe.ComponentName as string, recipe.ComponentConfiguration?.DefaultConfiguration ?? {}]));
  // strict: false, a separate instance: the components' schemas are compiled strictly in their own
  // process; here only their verdict matters.
  const ajv = new Ajv({ strict: false, allErrors: true });
  for (const [name, spec] of Object.entries(template.components ?? {})) {
    if (!name.startsWith(OUR_PREFIX)) continue;
    const schema = COMPONENT_CONFIG_SCHEMAS[name];
    if (!schema) {
      problems.push(`${name}: not one of our components (${Object.keys(COMPONENT_CONFIG_SCHEMAS).join(', ')})`);
      continue;
    }
    const merge = spec.configurationUpdate?.merge ?? {};
    if (!isObject(merge)) {
      problems.push(`${name}: configurationUpdate.merge must be an object`);
      continue;
    }
    if ('accessControl' in merge) problems.push(`${name}: merge must not change accessControl; it is part of the recipe, reviewed with the code`);
    const merged = deepMerge(defaults.get(name) ?? {}, merge) as Record<string, unknown>;
    const settings = componentSettings(merged);
    const validate = ajv.compile(schema);
    if (!validate(settings)) for (const error of validate.errors ?? []) problems.push(`${name}: configuration${error.instancePath} ${error.message}`);
    // Becomes the component's NODE_OPTIONS: a flag Node refuses there would stop it on every device.
    const nodeOptions = nodeOptionsProblem(merged.nodeOptions);
    if (nodeOptions) problems.push(`${name}: nodeOptions ${nodeOptions}`);
  }
  return problems;
}

export function readTemplate(path = DEFAULT_TEMPLATE): Template {
  const template = YAML.parse(readFileSync(path, 'utf8')) as Template;
  if (!isObject(template) || !isObject(template.components)) throw new DeployError(`${path}: no "components" map`);
  return template;
}

/** The complete CreateDeployment request; configuration merges become the JSON strings the API takes. */
export function buildDeploymentRequest(options: DeploymentOptions): CreateDeploymentCommandInput {
  const root = options.root ?? PROJECT_ROOT;
  const templatePath = options.template ?? DEFAULT_TEMPLATE;
  const { group } = parseThingGroupArn(options.targetArn);
  const version = readProjectVersion(root);
  const template = readTemplate(templatePath);
  const ours = readSourceRecipes(root).map(({ recipe }) => recipe.ComponentName as string);
  for (const name of ours) if (!template.components![name]) throw new DeployError(`${templatePath}: component ${name} is missing; the fleet runs all four`);
  const problems = checkMerges(template, root);
  if (problems.length > 0) throw new DeployError(`${templatePath}: invalid configuration:\n  ${problems.join('\n  ')}`);

  const components: Record<string, ComponentDeploymentSpecification> = {};
  for (const [name, spec] of Object.entries(template.components!)) {
    let componentVersion = spec.componentVersion;
    if (name.startsWith(OUR_PREFIX)) {
      if (componentVersion) throw new DeployError(`${templatePath}: ${name} has componentVersion "${componentVersion}"; our components take package.json's version, leave it out`);
      componentVersion = version;
    } else if (name === 'aws.greengrass.Nucleus' && options.nucleusVersion) {
      componentVersion = options.nucleusVersion;
    }
    if (!componentVersion) throw new DeployError(`${templatePath}: ${name} needs a componentVersion; an unpinned AWS component may update (and restart) devices unasked`);
    const update = spec.configurationUpdate;
    components[name] = {
      componentVersion,
      ...(update ? { configurationUpdate: { ...(update.merge !== undefined ? { merge: JSON.stringify(update.merge) } : {}), ...(update.reset ? { reset: update.reset } : {}) } } : {}),
      ...(spec.runWith ? { runWith: spec.runWith } : {}),
    };
  }
  return {
    targetArn: options.targetArn,
    deploymentName: options.name ?? `elevator-telemetry-${version}-${group}`,
    components,
    ...(template.deploymentPolicies ? { deploymentPolicies: template.deploymentPolicies } : {}),
    ...(template.iotJobConfiguration ? { iotJobConfiguration: template.iotJobConfiguration } : {}),
    tags: { project: 'elevator-edge-telemetry', version },
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'target-arn': { type: 'string' },
      'dry-run': { type: 'boolean', default: false },
      name: { type: 'string' },
      template: { type: 'string' },
      'nucleus-version': { type: 'string' },
      region: { type: 'string' },
      endpoint: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log('usage: node dist/scripts/deploy-fleet.js --target-arn arn:aws:iot:<region>:<account>:thinggroup/<name> [--dry-run] [--name NAME] [--template FILE] [--nucleus-version X.Y.Z] [--region R] [--endpoint URL]');
    return;
  }
  if (!values['target-arn']) throw new DeployError('--target-arn is required (arn:aws:iot:<region>:<account>:thinggroup/<name>)');
  const request = buildDeploymentRequest({
    targetArn: values['target-arn'],
    name: values.name,
    template: values.template ? resolve(values.template) : undefined,
    nucleusVersion: values['nucleus-version'],
  });
  if (values['dry-run']) {
    console.log(JSON.stringify(request, null, 2));
    return;
  }
  const region = values.region ?? parseThingGroupArn(request.targetArn!).region;
  const client = new GreengrassV2Client({ region, ...(values.endpoint ? { endpoint: values.endpoint } : {}), maxAttempts: 5, retryMode: 'standard' });
  const response = await client.send(new CreateDeploymentCommand(request));
  console.log(JSON.stringify({ deploymentId: response.deploymentId, iotJobId: response.iotJobId, iotJobArn: response.iotJobArn }, null, 2));
}

if (require.main === module) {
  main().catch((error) => {
    console.error(`deploy-fleet: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  });
}
