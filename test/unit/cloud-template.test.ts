import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML, { type ScalarTag, type CollectionTag, YAMLMap, YAMLSeq } from 'yaml';
import { PROJECT_ROOT, readProjectVersion, readSourceRecipes } from '../../scripts/package';
import { buildDeploymentRequest, checkMerges, readTemplate } from '../../scripts/deploy-fleet';

const DEPLOY_DIR = join(PROJECT_ROOT, 'deploy');
const CLOUD_TEMPLATE = join(DEPLOY_DIR, 'cloud-resources.yaml');

// ---------------------------------------------------------------- CloudFormation short forms
const FUNCTIONS = ['Base64', 'Cidr', 'FindInMap', 'GetAZs', 'ImportValue', 'Join', 'Select', 'Split', 'Sub', 'Transform', 'And', 'Equals', 'If', 'Not', 'Or'];

/**
 * "!Ref X" is {Ref: X}, "!GetAtt A.B" is {"Fn::GetAtt": [A, B]}, "!Condition C" is {Condition: C},
 * and every other "!Fn x" is {"Fn::Fn": x}, whether x is a scalar, a sequence or a map.
 */
function cloudFormationTags(): (ScalarTag | CollectionTag)[] {
  const tags: (ScalarTag | CollectionTag)[] = [];
  const forms = (tag: string, wrap: (value: unknown) => unknown) => {
    tags.push({ tag, resolve: (value: string) => wrap(value) } as ScalarTag);
    tags.push({ tag, collection: 'seq', nodeClass: YAMLSeq, resolve: (seq: YAMLSeq) => wrap(seq.toJSON()) } as unknown as CollectionTag);
    tags.push({ tag, collection: 'map', nodeClass: YAMLMap, resolve: (map: YAMLMap) => wrap(map.toJSON()) } as unknown as CollectionTag);
  };
  forms('!Ref', (value) => ({ Ref: value }));
  forms('!Condition', (value) => ({ Condition: value }));
  forms('!GetAtt', (value) => ({ 'Fn::GetAtt': typeof value === 'string' ? [value.slice(0, value.indexOf('.')), value.slice(value.indexOf('.') + 1)] : value }));
  for (const fn of FUNCTIONS) forms(`!${fn}`, (value) => ({ [`Fn::${fn}`]: value }));
  return tags;
}

export function parseCloudFormation(text: string): any {
  return YAML.parse(text, { customTags: cloudFormationTags() });
}

const PSEUDO_PARAMETERS = new Set(['AWS::AccountId', 'AWS::NotificationARNs', 'AWS::NoValue', 'AWS::Partition', 'AWS::Region', 'AWS::StackId', 'AWS::StackName', 'AWS::URLSuffix']);

/** Names a Fn::Sub string refers to: "${X}" and "${X.Attr}" but not the literal "${!X}". */
function subReferences(text: string): string[] {
  return [...text.matchAll(/\$\{([^}!][^}]*)\}/g)].map((m) => m[1].trim());
}

/** Every problem of the three kinds the test cares about, as readable lines. */
export function templateProblems(template: any): string[] {
  const problems: string[] = [];
  const resources: Record<string, any> = template.Resources ?? {};
  const known = new Set([...Object.keys(resources), ...Object.keys(template.Parameters ?? {}), ...PSEUDO_PARAMETERS]);
  const visit = (node: unknown, where: string, locals: Set<string>): void => {
    if (Array.isArray(node)) return node.forEach((item, i) => visit(item, `${where}[${i}]`, locals));
    if (!node || typeof node !== 'object') return;
    const object = node as Record<string, unknown>;
    if (typeof object.Ref === 'string' && !known.has(object.Ref)) problems.push(`${where}: !Ref ${object.Ref} names no resource or parameter`);
    const getAtt = object['Fn::GetAtt'];
    if (Array.isArray(getAtt) && typeof getAtt[0] === 'string' && !(getAtt[0] in resources)) problems.push(`${where}: !GetAtt ${getAtt.join('.')} names no resource`);
    const sub = object['Fn::Sub'];
    if (sub !== undefined) {
      const [text, variables] = typeof sub === 'string' ? [sub, {}] : (sub as [string, Record<string, unknown>]);
      const inner = new Set([...locals, ...Object.keys(variables ?? {})]);
      for (const name of subReferences(text)) {
        const target = name.includes('.') && !name.startsWith('AWS::') ? name.slice(0, name.indexOf('.')) : name;
        if (!known.has(target) && !inner.has(target)) problems.push(`${where}: !Sub \${${name}} names no resource, parameter or variable`);
        if (name.includes('.') && !name.startsWith('AWS::') && !(target in resources)) problems.push(`${where}: !Sub \${${name}} is an attribute of a non-resource`);
      }
      visit(variables, `${where}.Fn::Sub`, inner);
    }
    for (const [key, value] of Object.entries(object)) if (key !== 'Fn::Sub') visit(value, `${where}.${key}`, locals);
  };
  for (const [name, resource] of Object.entries(resources)) {
    visit(resource, `Resources.${name}`, new Set());
    if (resource.Type === 'AWS::IoT::TopicRule') {
      const errorAction = resource.Properties?.TopicRulePayload?.ErrorAction;
      if (!errorAction || Object.keys(errorAction).length === 0) problems.push(`Resources.${name}: topic rule without ErrorAction`);
    }
    if (resource.Type === 'AWS::S3::Bucket') {
      const block = resource.Properties?.PublicAccessBlockConfiguration ?? {};
      for (const flag of ['BlockPublicAcls', 'BlockPublicPolicy', 'IgnorePublicAcls', 'RestrictPublicBuckets']) {
        if (block[flag] !== true) problems.push(`Resources.${name}: PublicAccessBlockConfiguration.${flag} is not true`);
      }
    }
  }
  visit(template.Outputs ?? {}, 'Outputs', new Set());
  return problems;
}

describe('deploy/cloud-resources.yaml', () => {
  const template = parseCloudFormation(readFileSync(CLOUD_TEMPLATE, 'utf8'));

  test('short-form tags parse into their long forms', () => {
    assert.deepEqual(template.Resources.ArtifactBucketPolicy.Properties.Bucket, { Ref: 'ArtifactBucket' });
    assert.deepEqual(template.Resources.TokenExchangeRoleAlias.Properties.RoleArn, { 'Fn::GetAtt': ['TokenExchangeRole', 'Arn'] });
    assert.equal(typeof template.Resources.ArtifactBucket.Properties.BucketName['Fn::Sub'], 'string');
    const parsed = parseCloudFormation('a: !Join [":", [x, !Ref Y]]\nb: !Sub ["${V}", {V: !GetAtt R.Arn}]\nc: !If [C, !Ref A, !Ref AWS::NoValue]\n');
    assert.deepEqual(parsed, {
      a: { 'Fn::Join': [':', ['x', { Ref: 'Y' }]] },
      b: { 'Fn::Sub': ['${V}', { V: { 'Fn::GetAtt': ['R', 'Arn'] } }] },
      c: { 'Fn::If': ['C', { Ref: 'A' }, { Ref: 'AWS::NoValue' }] },
    });
  });

  test('every topic rule has an error action, every bucket blocks public access, every reference resolves', () => {
    assert.deepEqual(templateProblems(template), []);
    const types = Object.values<any>(template.Resources).map((r) => r.Type);
    for (const type of ['AWS::IoT::Policy', 'AWS::IAM::Role', 'AWS::IoT::RoleAlias', 'AWS::S3::Bucket', 'AWS::IoT::TopicRule']) assert.ok(types.includes(type), `no ${type}`);
    assert.equal(types.filter((t) => t === 'AWS::S3::Bucket').length, 2, 'artifact and archive buckets');
    assert.equal(types.filter((t) => t === 'AWS::IoT::TopicRule').length, 2, 'data and health rules');
  });

  test('the checks find each kind of mistake', () => {
    const broken = parseCloudFormation(`
Parameters: { P: { Type: String } }
Resources:
  Open: { Type: AWS::S3::Bucket, Properties: { PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true } } }
  Rule: { Type: AWS::IoT::TopicRule, Properties: { TopicRulePayload: { Sql: "SELECT * FROM 'a'", Actions: [] } } }
  User: { Type: AWS::IAM::Role, Properties: { A: !Ref Missing, B: !GetAtt Gone.Arn, C: !Sub '\${P}-\${AWS::Region}-\${Nope}-\${!Literal}', D: !Sub ['\${X}', { X: !Ref P }] } }
`);
    const problems = templateProblems(broken);
    assert.equal(problems.length, 5, problems.join('\n'));
    assert.ok(problems.some((p) => /Open: .*RestrictPublicBuckets/.test(p)));
    assert.ok(problems.some((p) => /Rule: topic rule without ErrorAction/.test(p)));
    assert.ok(problems.some((p) => /!Ref Missing/.test(p)));
    assert.ok(problems.some((p) => /!GetAtt Gone\.Arn/.test(p)));
    assert.ok(problems.some((p) => /\$\{Nope\}/.test(p)));
  });

  test('the core device policy is per thing: own client id, own topics only', () => {
    const statements = template.Resources.CoreDevicePolicy.Properties.PolicyDocument.Statement as any[];
    const THING = '${!iot:Connection.Thing.ThingName}';
    for (const statement of statements) {
      const actions = [statement.Action].flat();
      if (!actions.some((a: string) => ['iot:Connect', 'iot:Publish', 'iot:Subscribe', 'iot:Receive'].includes(a))) continue;
      assert.equal(statement.Effect, 'Allow');
      for (const resource of [statement.Resource].flat()) {
        const arn = resource['Fn::Sub'] as string;
        assert.equal(typeof arn, 'string', `${statement.Sid}: resource should be an ARN built with !Sub`);
        const path = arn.slice(arn.indexOf('${AWS::AccountId}:') + '${AWS::AccountId}:'.length);
        if (actions.includes('iot:Connect')) assert.equal(path, `client/${THING}`);
        else {
          assert.match(path, /^(topic|topicfilter)\//, `${statement.Sid}: ${path}`);
          const topic = path.slice(path.indexOf('/') + 1);
          assert.ok(
            topic.startsWith(`dt/elevator/${THING}/`) || topic.startsWith(`cmd/elevator/${THING}/`) || topic.startsWith(`$aws/things/${THING}/`),
            `${statement.Sid}: ${topic} is not one of this device's own topics`,
          );
        }
      }
      if (actions.includes('iot:Publish')) for (const r of [statement.Resource].flat()) assert.ok(!(r['Fn::Sub'] as string).includes('/cmd/'), 'devices never publish commands');
    }
  });
});

// ---------------------------------------------------------------- the fleet deployment
const TARGET = 'arn:aws:iot:eu-west-1:123456789012:thinggroup/elevator-fleet';

describe('deploy/deployment.yaml and npm run deploy -- --dry-run', () => {
  test('the dry run prints the complete CreateDeployment request', () => {
    const stdout = execFileSync(process.execPath, [join(PROJECT_ROOT, 'dist', 'scripts', 'deploy-fleet.js'), '--dry-run', '--target-arn', TARGET], { encoding: 'utf8', env: { ...process.env, AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '' } });
    const request = JSON.parse(stdout);
    const version = readProjectVersion();
    assert.equal(request.targetArn, TARGET);
    assert.match(request.deploymentName, new RegExp(`${version.replace(/\./g, '\\.')}`));
    for (const { recipe } of readSourceRecipes()) {
      assert.equal(request.components[recipe.ComponentName]?.componentVersion, version, `${recipe.ComponentName} at package.json's version`);
      assert.equal(typeof request.components[recipe.ComponentName].configurationUpdate.merge, 'string', 'merges are JSON strings, as the API takes them');
    }
    const nucleus = JSON.parse(request.components['aws.greengrass.Nucleus'].configurationUpdate.merge);
    assert.match(request.components['aws.greengrass.Nucleus'].componentVersion, /^\d+\.\d+\.\d+$/);
    assert.equal(nucleus.mqtt.spooler.storageType, 'Disk');
    assert.ok(nucleus.mqtt.spooler.maxSizeInBytes > 0);
    assert.ok(nucleus.mqtt.keepAliveTimeoutMs >= 30_000, 'AWS IoT Core accepts 30 s or more');
    assert.ok(nucleus.mqtt.maxInFlightPublishes >= 1 && nucleus.mqtt.maxInFlightPublishes <= 100, 'the nucleus caps it at 100');
    assert.match(request.components['aws.greengrass.DiskSpooler'].componentVersion, /^\d+\.\d+\.\d+$/, 'storageType Disk needs the DiskSpooler');
    assert.equal(request.deploymentPolicies.failureHandlingPolicy, 'ROLLBACK');
    assert.equal(request.deploymentPolicies.componentUpdatePolicy.action, 'NOTIFY_COMPONENTS');
    assert.ok(request.deploymentPolicies.componentUpdatePolicy.timeoutInSeconds > 45, 'longer than the components\' 45 s of deferral');
    assert.ok(request.deploymentPolicies.configurationValidationPolicy.timeoutInSeconds > 0);
    const job = request.iotJobConfiguration;
    assert.ok(job.jobExecutionsRolloutConfig.exponentialRate.baseRatePerMinute > 0);
    assert.ok(job.jobExecutionsRolloutConfig.maximumPerMinute > 0);
    assert.ok(job.abortConfig.criteriaList.some((c: any) => c.failureType === 'FAILED' && c.action === 'CANCEL'));
    assert.ok(job.timeoutConfig.inProgressTimeoutInMinutes > 0);
  });

  test('the dry run refuses a target that is not a thing group', () => {
    const result = spawnSync(process.execPath, [join(PROJECT_ROOT, 'dist', 'scripts', 'deploy-fleet.js'), '--dry-run', '--target-arn', 'arn:aws:iot:eu-west-1:123456789012:thing/one'], { encoding: 'utf8' });
    assert.equal(result.status, 1);
    assert.match(result.stderr, /thing group ARN/);
  });

  test('every merge of our components passes the component\'s own schema; a bad one is named', () => {
    assert.deepEqual(checkMerges(readTemplate()), []);
    const bad = readTemplate();
    (bad.components!['com.elevator.HealthReporter'].configurationUpdate!.merge as any).publishIntervalMs = 10;
    (bad.components!['com.elevator.StreamBuffer'].configurationUpdate!.merge as any).maxStoreBytes2 = 1;
    (bad.components!['com.elevator.MqttPublisher'].configurationUpdate!.merge as any).nodeOptions = '--max-semi-space-size=1 --no-such-flag';
    const problems = checkMerges(bad);
    assert.ok(problems.some((p) => /MqttPublisher: nodeOptions "--no-such-flag" is not allowed in NODE_OPTIONS/.test(p)), problems.join('\n'));
    assert.ok(problems.some((p) => /HealthReporter: configuration\/publishIntervalMs must be >= 1000/.test(p)), problems.join('\n'));
    assert.ok(problems.some((p) => /StreamBuffer: .*additional properties/.test(p)), problems.join('\n'));
  });

  test('a componentVersion on one of our components is refused: package.json is the one place', () => {
    const dir = mkdtempSync(join(tmpdir(), 'deployment-template-'));
    try {
      const template = YAML.parse(readFileSync(join(DEPLOY_DIR, 'deployment.yaml'), 'utf8'));
      template.components['com.elevator.MqttPublisher'].componentVersion = '9.9.9';
      writeFileSync(join(dir, 'deployment.yaml'), YAML.stringify(template));
      assert.throws(() => buildDeploymentRequest({ targetArn: TARGET, template: join(dir, 'deployment.yaml') }), /leave it out/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
