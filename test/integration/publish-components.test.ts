import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import YAML from 'yaml';
import { startLocalS3, type LocalS3 } from '../helpers/s3-server';
import { PROJECT_ROOT, packageComponents, readSourceRecipes, type PackagedComponent } from '../../scripts/package';
import { PART_SIZE_BYTES, PublishError, createS3Client, planPublish, uploadArtifacts } from '../../scripts/publish-components';

const BUCKET = 'elevator-artifacts-test';
const REGION = 'us-east-1';

function sha256(body: Uint8Array): string {
  return createHash('sha256').update(body).digest('base64');
}

async function readBack(s3: S3Client, bucket: string, key: string): Promise<Uint8Array> {
  const response = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return response.Body!.transformToByteArray();
}

/**
 * S3 for real, against a local S3-compatible server (s3rver); Greengrass only as a dry run, since
 * nothing here may reach AWS.
 */
describe('publish-components', () => {
  let s3server: LocalS3;
  let s3: S3Client;
  let buildDir: string;
  let packaged: PackagedComponent[];
  const quiet = () => {};

  before(async () => {
    buildDir = mkdtempSync(join(tmpdir(), 'publish-test-'));
    packaged = packageComponents({ outDir: buildDir, bucket: BUCKET, prefix: 'components/' });
    s3server = await startLocalS3();
    s3 = createS3Client({ region: REGION, endpoint: s3server.endpoint, credentials: s3server.credentials });
    await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  });
  after(async () => {
    s3?.destroy();
    await s3server?.stop();
    rmSync(buildDir, { recursive: true, force: true });
  });

  test('uploads every artifact; what S3 returns has the digest in the recipe', async () => {
    const plan = planPublish({ buildDir });
    assert.equal(plan.uploads.length, packaged.reduce((n, p) => n + p.artifacts.length, 0));
    const outcomes = await uploadArtifacts(plan, s3, quiet);
    assert.ok([...outcomes.values()].every((o) => o === 'uploaded'));
    for (const component of packaged) {
      const recipe = YAML.parse(readFileSync(component.recipePath, 'utf8'));
      for (const artifact of recipe.Manifests[0].Artifacts) {
        const [, bucket, key] = /^s3:\/\/([^/]+)\/(.+)$/.exec(artifact.URI)!;
        const body = await readBack(s3, bucket, key);
        assert.equal(sha256(body), artifact.Digest, `${artifact.URI}: what S3 holds differs from the recipe`);
      }
    }
  });

  test('a second run uploads nothing; a different object under the same key is refused', async () => {
    const plan = planPublish({ buildDir });
    const outcomes = await uploadArtifacts(plan, s3, quiet);
    assert.ok([...outcomes.values()].every((o) => o === 'already-there'), JSON.stringify([...outcomes]));
    const victim = plan.uploads[0];
    await s3.send(new PutObjectCommand({ Bucket: victim.bucket, Key: victim.key, Body: 'something else', Metadata: { sha256: sha256(Buffer.from('something else')) } }));
    await assert.rejects(uploadArtifacts(plan, s3, quiet), (error: Error) => error instanceof PublishError && /already exists with a different content/.test(error.message));
  });

  test('a file above the part size goes up as a multipart upload and comes back whole', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'publish-big-'));
    try {
      const body = randomBytes(PART_SIZE_BYTES * 2 + 12345);
      mkdirSync(join(dir, 'artifacts', 'com.example.Big', '1.0.0'), { recursive: true });
      mkdirSync(join(dir, 'recipes'));
      writeFileSync(join(dir, 'artifacts', 'com.example.Big', '1.0.0', 'model.bin'), body);
      const recipe = {
        RecipeFormatVersion: '2020-01-25',
        ComponentName: 'com.example.Big',
        ComponentVersion: '1.0.0',
        Manifests: [{ Platform: { os: 'linux' }, Lifecycle: { Run: 'true' }, Artifacts: [{ URI: `s3://${BUCKET}/big/com.example.Big/1.0.0/model.bin`, Digest: sha256(body), Algorithm: 'SHA-256' }] }],
      };
      writeFileSync(join(dir, 'recipes', 'com.example.Big-1.0.0.yaml'), YAML.stringify(recipe));
      const plan = planPublish({ buildDir: dir });
      assert.equal(plan.uploads[0].size, body.length);
      await uploadArtifacts(plan, s3, quiet);
      assert.equal(sha256(await readBack(s3, BUCKET, 'big/com.example.Big/1.0.0/model.bin')), sha256(body));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('planPublish refuses an artifact that no longer matches its recipe', () => {
    const dir = mkdtempSync(join(tmpdir(), 'publish-stale-'));
    try {
      packageComponents({ outDir: dir, bucket: BUCKET, components: [packaged[0].name] });
      writeFileSync(join(dir, 'artifacts', packaged[0].name, packaged[0].version, 'main.js'), '// not the bundle');
      assert.throws(() => planPublish({ buildDir: dir }), /differs from the Digest/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('--dry-run prints every request and sends none', () => {
    // An endpoint where nothing listens and no credentials: any real call would fail the command.
    const stdout = execFileSync(
      process.execPath,
      [join(PROJECT_ROOT, 'dist', 'scripts', 'publish-components.js'), '--dry-run', '--build-dir', buildDir, '--bucket', 'other-bucket', '--prefix', 'releases', '--region', 'eu-west-1', '--endpoint', 'http://127.0.0.1:9'],
      { encoding: 'utf8', env: { ...process.env, AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '', AWS_PROFILE: 'none-such' } },
    );
    const printed = JSON.parse(stdout);
    assert.equal(printed.dryRun, true);
    assert.equal(printed.region, 'eu-west-1');
    const files = packaged.flatMap((p) => p.artifacts.map((a) => ({ component: p.name, version: p.version, file: a.path.split('/').pop()!, digest: a.digest, size: a.size })));
    assert.equal(printed.uploads.length, files.length);
    for (const expected of files) {
      const upload = printed.uploads.find((u: any) => u.key === `releases/${expected.component}/${expected.version}/${expected.file}`);
      assert.ok(upload, `no upload of ${expected.component}/${expected.file}`);
      assert.equal(upload.bucket, 'other-bucket');
      assert.equal(upload.size, expected.size);
      assert.equal(upload.digest, expected.digest);
    }
    const names = readSourceRecipes().map(({ recipe }) => recipe.ComponentName);
    assert.deepEqual(printed.createComponentVersion.map((c: any) => c.component).sort(), [...names].sort());
    const order = printed.createComponentVersion.map((c: any) => c.component);
    assert.ok(order.indexOf('com.elevator.StreamBuffer') < order.indexOf('com.elevator.MqttPublisher'), 'a dependency is created before its dependents');
    for (const create of printed.createComponentVersion) {
      const recipe = YAML.parse(create.input.inlineRecipe);
      assert.equal(recipe.ComponentName, create.component);
      assert.equal(recipe.ComponentVersion, create.version);
      const packagedComponent = packaged.find((p) => p.name === create.component)!;
      for (const artifact of recipe.Manifests[0].Artifacts) {
        assert.match(artifact.URI, new RegExp(`^s3://other-bucket/releases/${create.component.replace(/\./g, '\\.')}/`));
        assert.ok(packagedComponent.artifacts.some((a) => a.digest === artifact.Digest), 'digests are unchanged by re-targeting');
      }
      assert.deepEqual(recipe.ComponentConfiguration, packagedComponent.recipe.ComponentConfiguration);
    }
  });
});
