import { randomUUID } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/**
 * Object storage as the ingest needs it: whole-object put, get and prefix listing, nothing
 * else, so an S3 backend can implement it without emulating a filesystem.
 */
export interface ArchiveBackend {
  /** Replaces the object at key. Readers see the old object or the new one, never a mix. */
  put(key: string, body: Buffer | string): Promise<void>;
  /** The object's bytes, or undefined if there is none. */
  get(key: string): Promise<Buffer | undefined>;
  /** Every key that starts with prefix (a plain string prefix, as S3 ListObjectsV2), sorted. */
  list(prefix: string): Promise<string[]>;
}

/** S3's limit on a key's UTF-8 length (Amazon S3 User Guide, "Naming Amazon S3 objects"). */
export const MAX_KEY_BYTES = 1024;

// S3's "safe characters"; a segment may not start with '.', which keeps '.', '..' and this
// backend's temporary files out of the key space.
const SAFE_SEGMENT = /^[A-Za-z0-9!_*'()-][A-Za-z0-9!_.*'()-]*$/;

export function checkArchiveKey(key: string): void {
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) {
    throw new RangeError(`archive key is ${Buffer.byteLength(key)} bytes; S3 allows at most ${MAX_KEY_BYTES}`);
  }
  const segments = key.split('/');
  for (const segment of segments) {
    if (!SAFE_SEGMENT.test(segment)) {
      throw new RangeError(
        `archive key "${key}" has an invalid segment "${segment}": segments are non-empty, use only A-Z a-z 0-9 ! - _ . * ' ( ), and do not start with '.'`,
      );
    }
  }
}

/**
 * An archive in a local folder, one file per object. Used by `npm start` and the tests, and as
 * the reference behaviour for the S3 backend.
 */
export class LocalFolderArchive implements ArchiveBackend {
  constructor(readonly root: string) {}

  async put(key: string, body: Buffer | string): Promise<void> {
    const file = this.pathOf(key);
    const dir = dirname(file);
    await mkdir(dir, { recursive: true });
    // Write-then-rename: rename(2) within one directory is atomic, so a crash leaves either the
    // old object or the new one, plus at worst an orphan temp file that list() never shows.
    const temp = join(dir, `.${basename(file)}.${process.pid}.${randomUUID()}.tmp`);
    try {
      const handle = await open(temp, 'wx');
      try {
        await handle.writeFile(body);
        // Without fsync before rename, a power cut can leave the new name pointing at an empty file.
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, file);
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
    await syncDirectory(dir);
  }

  async get(key: string): Promise<Buffer | undefined> {
    try {
      return await readFile(this.pathOf(key));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  async list(prefix: string): Promise<string[]> {
    // Only the folder part of the prefix narrows the walk; the rest filters names, as in S3.
    const folder = prefix.slice(0, prefix.lastIndexOf('/') + 1);
    if (folder !== '') checkArchiveKey(folder.slice(0, -1));
    const keys: string[] = [];
    await this.walk(folder, keys);
    // Keys are ASCII (checkArchiveKey), so code-unit order is S3's UTF-8 byte order.
    return keys.filter((key) => key.startsWith(prefix)).sort();
  }

  private async walk(folder: string, out: string[]): Promise<void> {
    let entries;
    try {
      entries = await readdir(join(this.root, ...folder.split('/').filter(Boolean)), { withFileTypes: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT' || (error as NodeJS.ErrnoException).code === 'ENOTDIR') return;
      throw error;
    }
    for (const entry of entries) {
      if (entry.name.startsWith('.')) continue;
      if (entry.isDirectory()) await this.walk(`${folder}${entry.name}/`, out);
      else if (entry.isFile()) out.push(`${folder}${entry.name}`);
    }
  }

  private pathOf(key: string): string {
    checkArchiveKey(key);
    return join(this.root, ...key.split('/'));
  }
}

/** Makes a rename durable. Some platforms cannot open a directory for fsync; there it is skipped. */
async function syncDirectory(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EINVAL' && code !== 'EPERM' && code !== 'EBADF') throw error;
  } finally {
    await handle?.close();
  }
}
