/**
 * Publishes what the package step wrote to greengrass-build/: uploads every artifact to S3 and
 * creates each component version in AWS IoT Greengrass (CreateComponentVersion with the recipe
 * inline). With --dry-run it prints every request as JSON and calls nothing.
 *
 * - Uploads go through @aws-sdk/lib-storage's Upload: one PutObject below the part size,
 *   multipart above it, parts in parallel; each request is retried by the SDK's standard retry
 *   strategy (jittered exponential backoff).
 * - An artifact already in S3 with the same SHA-256 (object metadata) is not uploaded again, so a
 *   publish that failed half-way can simply be run again; one with a different SHA-256 is refused:
 *   a published version is immutable, and devices check the digest.
 * - Local files are checked against their recipe's Digest before anything is sent.
 * - A component version is created after all its artifacts are in S3, in dependency order, and
 *   followed until Greengrass says DEPLOYABLE (it reads the artifacts to do so) or FAILED.
 *
 * usage: node dist/scripts/publish-components.js [--bucket NAME] [--prefix KEY_PREFIX] [--region R]
 *          [--endpoint URL] [--build-dir DIR] [--component NAME ...] [--dry-run]
 */
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { HeadObjectCommand, S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import {
  ConflictException,
  CreateComponentVersionCommand,
  DescribeComponentCommand,
  GreengrassV2Client,
  type CreateComponentVersionCommandInput,
} from '@aws-sdk/client-greengrassv2';
import YAML from 'yaml';
import { GREENGRASS_BUILD_DIR, PROJECT_ROOT, artifactKey, checkBucket, normalizePrefix, readSharedGdkSettings, sha256Base64, type Recipe } from './package';

export class PublishError extends Error {}

/** S3's minimum part size; bigger parts mean fewer requests for the MB-sized bundles. */
export const PART_SIZE_BYTES = 8 * 1024 * 1024;
const SDK_RETRY = { maxAttempts: 5, retryMode: 'standard' } as const;

export interface PlannedUpload {
  component: string;
  version: string;
  file: string;
  bucket: string;
  key: string;
  size: number;
  digest: string;
  contentType: string;
}

export interface PlannedComponent {
  component: string;
  version: string;
  recipePath: string;
  /** The recipe as it will be sent (artifact URIs re-targeted if --bucket/--prefix were given). */
  recipeText: string;
  dependsOn: string[];
}

export interface PublishPlan {
  uploads: PlannedUpload[];
  components: PlannedComponent[];
}

export interface PlanOptions {
  buildDir?: string;
  /** Re-target every artifact URI to this bucket (and prefix); the recipes' own URIs otherwise. */
  bucket?: string;
  prefix?: string;
  components?: string[];
}

function contentTypeOf(file: string): string {
  if (file.endsWith('.js')) return 'application/javascript';
  if (file.endsWith('.json')) return 'application/json';
  return 'application/octet-stream';
}

function parseS3Uri(uri: string, where: string): { bucket: string; key: string } {
  const match = /^s3:\/\/([^/]+)\/(.+)$/.exec(uri);
  if (!match) throw new PublishError(`${where}: artifact URI "${uri}" is not s3://<bucket>/<key>`);
  return { bucket: match[1], key: match[2] };
}

/** Components that depend on none of the others first, so a dependency always exists before its dependents. */
function inDependencyOrder(components: PlannedComponent[]): PlannedComponent[] {
  const ordered: PlannedComponent[] = [];
  const pending = [...components];
  while (pending.length > 0) {
    const ready = pending.filter((c) => c.dependsOn.every((d) => ordered.some((o) => o.component === d) || !pending.some((p) => p.component === d)));
    if (ready.length === 0) throw new PublishError(`dependency cycle between ${pending.map((c) => c.component).join(', ')}`);
    for (const c of ready) {
      ordered.push(c);
      pending.splice(pending.indexOf(c), 1);
    }
  }
  return ordered;
}

/** Reads greengrass-build/ and decides every request, without sending any. */
export function planPublish(options: PlanOptions = {}): PublishPlan {
  const buildDir = options.buildDir ?? join(PROJECT_ROOT, GREENGRASS_BUILD_DIR);
  const recipesDir = join(buildDir, 'recipes');
  if (!existsSync(recipesDir)) throw new PublishError(`${recipesDir} does not exist: run npm run package first`);
  if (options.bucket) checkBucket(options.bucket);
  const prefix = options.prefix === undefined ? undefined : normalizePrefix(options.prefix);
  const uploads: PlannedUpload[] = [];
  const components: PlannedComponent[] = [];
  const seen = new Map<string, string>();
  for (const file of readdirSync(recipesDir).filter((f) => f.endsWith('.yaml')).sort()) {
    const recipePath = join(recipesDir, file);
    const recipe = YAML.parse(readFileSync(recipePath, 'utf8')) as Recipe;
    const name = String(recipe.ComponentName);
    const version = String(recipe.ComponentVersion);
    if (options.components && !options.components.includes(name)) continue;
    if (seen.has(name)) throw new PublishError(`${recipesDir} holds two versions of ${name} (${seen.get(name)} and ${version}): run npm run package again`);
    seen.set(name, version);
    for (const manifest of recipe.Manifests ?? []) {
      for (const artifact of manifest.Artifacts ?? []) {
        const fileName = basename(String(artifact.URI));
        const local = join(buildDir, 'artifacts', name, version, fileName);
        if (!existsSync(local)) throw new PublishError(`${recipePath}: artifact ${local} is missing: run npm run package again`);
        const digest = sha256Base64(local);
        if (digest !== artifact.Digest) throw new PublishError(`${local}: SHA-256 ${digest} differs from the Digest in ${recipePath} (${artifact.Digest}): run npm run package again`);
        const target = parseS3Uri(String(artifact.URI), recipePath);
        const bucket = options.bucket ?? target.bucket;
        const key = prefix === undefined ? target.key : artifactKey(prefix, name, version, fileName);
        artifact.URI = `s3://${bucket}/${key}`;
        if (!uploads.some((u) => u.bucket === bucket && u.key === key)) {
          uploads.push({ component: name, version, file: local, bucket, key, size: readFileSync(local).length, digest, contentType: contentTypeOf(fileName) });
        }
      }
    }
    components.push({ component: name, version, recipePath, recipeText: YAML.stringify(recipe, { lineWidth: 0 }), dependsOn: Object.keys(recipe.ComponentDependencies ?? {}) });
  }
  if (components.length === 0) throw new PublishError(`no recipe to publish in ${recipesDir}${options.components ? ` for ${options.components.join(', ')}` : ''}`);
  for (const wanted of options.components ?? []) if (!seen.has(wanted)) throw new PublishError(`no packaged recipe for ${wanted} in ${recipesDir}`);
  return { uploads, components: inDependencyOrder(components) };
}

export function createComponentVersionInput(component: PlannedComponent): CreateComponentVersionCommandInput {
  return { inlineRecipe: Buffer.from(component.recipeText, 'utf8'), tags: { project: 'elevator-edge-telemetry' } };
}

export interface ClientOptions {
  region: string;
  endpoint?: string;
  credentials?: { accessKeyId: string; secretAccessKey: string };
}

export function createS3Client(options: ClientOptions): S3Client {
  const config: S3ClientConfig = {
    region: options.region,
    ...(options.endpoint ? { endpoint: options.endpoint, forcePathStyle: true } : {}),
    ...(options.credentials ? { credentials: options.credentials } : {}),
    ...SDK_RETRY,
    // As cloud/s3-archive.ts: checksums only where S3 requires them, which S3-compatible servers
    // (the local test server) accept; the SHA-256 of every artifact is checked separately.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  };
  return new S3Client(config);
}

export function createGreengrassClient(options: ClientOptions): GreengrassV2Client {
  return new GreengrassV2Client({
    region: options.region,
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    ...(options.credentials ? { credentials: options.credentials } : {}),
    ...SDK_RETRY,
  });
}

/** The SHA-256 an earlier publish stored with the object, or undefined if there is no object. */
async function existingDigest(s3: S3Client, upload: PlannedUpload): Promise<string | undefined | null> {
  try {
    const head = await s3.send(new HeadObjectCommand({ Bucket: upload.bucket, Key: upload.key }));
    return head.Metadata?.sha256 ?? null;
  } catch (error) {
    const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    if (status === 404 || (error as { name?: string }).name === 'NotFound') return undefined;
    throw error;
  }
}

export type UploadOutcome = 'uploaded' | 'already-there';

export async function uploadArtifacts(plan: PublishPlan, s3: S3Client, log: (line: string) => void = console.log): Promise<Map<string, UploadOutcome>> {
  const outcomes = new Map<string, UploadOutcome>();
  for (const upload of plan.uploads) {
    const where = `s3://${upload.bucket}/${upload.key}`;
    const before = await existingDigest(s3, upload);
    if (before === upload.digest) {
      log(`${where}: already there with the same SHA-256, not uploaded again`);
      outcomes.set(where, 'already-there');
      continue;
    }
    if (before !== undefined) {
      throw new PublishError(`${where} already exists with a different content (sha256 ${before ?? 'unknown'}, this build ${upload.digest}); published versions are immutable: npm run version:bump -- patch, then package and publish again`);
    }
    await new Upload({
      client: s3,
      params: { Bucket: upload.bucket, Key: upload.key, Body: readFileSync(upload.file), ContentType: upload.contentType, Metadata: { sha256: upload.digest } },
      partSize: PART_SIZE_BYTES,
      queueSize: 4,
      leavePartsOnError: false,
    }).done();
    log(`${where}: uploaded ${upload.size} B`);
    outcomes.set(where, 'uploaded');
  }
  return outcomes;
}

export async function createComponentVersions(plan: PublishPlan, greengrass: GreengrassV2Client, region: string, log: (line: string) => void = console.log, waitMs = 120_000): Promise<string[]> {
  const arns: string[] = [];
  for (const component of plan.components) {
    let arn: string | undefined;
    try {
      arn = (await greengrass.send(new CreateComponentVersionCommand(createComponentVersionInput(component)))).arn;
    } catch (error) {
      if (error instanceof ConflictException || (error as { name?: string }).name === 'ConflictException') {
        throw new PublishError(`${component.component} ${component.version} already exists in ${region}; component versions are immutable: npm run version:bump -- patch`);
      }
      throw error;
    }
    if (!arn) throw new PublishError(`CreateComponentVersion for ${component.component} ${component.version} returned no ARN`);
    const deadline = Date.now() + waitMs;
    for (;;) {
      const described = await greengrass.send(new DescribeComponentCommand({ arn }));
      const state = described.status?.componentState;
      if (state === 'DEPLOYABLE') break;
      if (state === 'FAILED') throw new PublishError(`${component.component} ${component.version} FAILED in Greengrass: ${described.status?.message ?? ''} ${JSON.stringify(described.status?.errors ?? {})}`);
      if (Date.now() > deadline) throw new PublishError(`${component.component} ${component.version} still ${state} after ${waitMs / 1000} s (${arn})`);
      await new Promise((r) => setTimeout(r, 2000));
    }
    log(`${component.component} ${component.version}: DEPLOYABLE (${arn})`);
    arns.push(arn);
  }
  return arns;
}

/** What --dry-run prints: every request, with the recipe as text (it is sent as its UTF-8 bytes). */
export function describePlan(plan: PublishPlan, client: ClientOptions): Record<string, unknown> {
  return {
    dryRun: true,
    region: client.region,
    endpoint: client.endpoint ?? null,
    uploads: plan.uploads.map((u) => ({ component: u.component, version: u.version, file: u.file, bucket: u.bucket, key: u.key, size: u.size, digest: u.digest, algorithm: 'SHA-256', contentType: u.contentType, multipart: u.size > PART_SIZE_BYTES })),
    createComponentVersion: plan.components.map((c) => {
      const input = createComponentVersionInput(c);
      return { component: c.component, version: c.version, input: { ...input, inlineRecipe: c.recipeText } };
    }),
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      bucket: { type: 'string' },
      prefix: { type: 'string' },
      region: { type: 'string' },
      endpoint: { type: 'string' },
      'build-dir': { type: 'string' },
      component: { type: 'string', multiple: true },
      'dry-run': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log('usage: node dist/scripts/publish-components.js [--bucket NAME] [--prefix KEY_PREFIX] [--region R] [--endpoint URL] [--build-dir DIR] [--component NAME ...] [--dry-run]');
    return;
  }
  const region = values.region ?? process.env.AWS_REGION ?? readSharedGdkSettings().region;
  const client: ClientOptions = { region, endpoint: values.endpoint };
  const plan = planPublish({ buildDir: values['build-dir'] ? resolve(values['build-dir']) : undefined, bucket: values.bucket, prefix: values.prefix, components: values.component });
  if (values['dry-run']) {
    console.log(JSON.stringify(describePlan(plan, client), null, 2));
    return;
  }
  await uploadArtifacts(plan, createS3Client(client));
  await createComponentVersions(plan, createGreengrassClient(client), region);
}

if (require.main === module) {
  main().catch((error) => {
    console.error(`publish-components: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  });
}
