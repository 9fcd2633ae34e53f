/**
 * The archive in Amazon S3, or any S3-compatible store, through the AWS SDK for JavaScript v3.
 * Keys are the same as the local folder's (cloud/keys.ts), under an optional prefix.
 *
 * Every call has a bounded time and bounded retries: the SDK's standard retry strategy (jittered
 * exponential backoff, `maxAttempts` attempts in all, throttling and 5xx retried) with a per-request
 * timeout, so a slow or failing store shows up as an error the ingest counts and retries itself,
 * never as a hang. S3 gives strong read-after-write consistency, which the ledger rebuild relies on
 * (a listed key's object is readable).
 */
import { GetObjectCommand, ListObjectsV2Command, NoSuchKey, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { checkArchiveKey, type ArchiveBackend } from './archive';

export interface S3ArchiveOptions {
  bucket: string;
  /** Prepended to every key, e.g. "elevator/"; "" by default. */
  prefix?: string;
  region?: string;
  /** An S3-compatible endpoint (MinIO, a local test server); AWS's own when absent. */
  endpoint?: string;
  /** Path-style addressing (bucket in the path), which most S3-compatible servers need. */
  forcePathStyle?: boolean;
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** Attempts per call, the first included (SDK standard retry mode). */
  maxAttempts?: number;
  /** Per attempt, connect plus response. */
  requestTimeoutMs?: number;
}

export const S3_DEFAULTS = { maxAttempts: 5, requestTimeoutMs: 10_000 } as const;

/** s3://bucket/prefix → bucket and prefix (the prefix keeps a trailing "/"). */
export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const match = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(url);
  if (!match) throw new RangeError(`archive URL must be s3://<bucket>[/<prefix>] with a valid bucket name, got "${url}"`);
  const prefix = match[2] ?? '';
  return { bucket: match[1], prefix: prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/` };
}

export class S3ArchiveBackend implements ArchiveBackend {
  readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;

  constructor(options: S3ArchiveOptions) {
    this.bucket = options.bucket;
    this.prefix = options.prefix ?? '';
    this.client = new S3Client({
      region: options.region ?? 'us-east-1',
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      forcePathStyle: options.forcePathStyle ?? Boolean(options.endpoint),
      ...(options.credentials ? { credentials: options.credentials } : {}),
      maxAttempts: options.maxAttempts ?? S3_DEFAULTS.maxAttempts,
      retryMode: 'standard',
      requestHandler: { requestTimeout: options.requestTimeoutMs ?? S3_DEFAULTS.requestTimeoutMs, connectionTimeout: options.requestTimeoutMs ?? S3_DEFAULTS.requestTimeoutMs },
      // Checksums only where S3 requires them: S3-compatible servers differ in how they treat the
      // newer default trailing checksums, and the archive keeps its own checksum in every envelope.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  }

  async put(key: string, body: Buffer | string): Promise<void> {
    checkArchiveKey(key);
    await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.prefix + key, Body: typeof body === 'string' ? Buffer.from(body) : body, ContentType: 'application/json' }));
  }

  async get(key: string): Promise<Buffer | undefined> {
    checkArchiveKey(key);
    try {
      const response = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }));
      return Buffer.from(await response.Body!.transformToByteArray());
    } catch (error) {
      if (error instanceof NoSuchKey || (error as { name?: string }).name === 'NoSuchKey') return undefined;
      throw error;
    }
  }

  /** Every key under the prefix, across as many ListObjectsV2 pages as it takes (1000 keys a page). */
  async list(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix + prefix, ContinuationToken: token }));
      for (const object of page.Contents ?? []) if (object.Key) keys.push(object.Key.slice(this.prefix.length));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return keys.sort();
  }
}
