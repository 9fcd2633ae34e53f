import { closeSync, fsyncSync, openSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Replaces `path` with `text` so that a crash or a power cut leaves the old file or the new one,
 * never a part: a temporary file beside it, written and fsync'd, renamed over it (rename(2) within
 * one folder is atomic), then the folder fsync'd so the rename itself survives a power cut.
 * One writer per path (the temporary file's name is fixed). Throws when the new file could not
 * be put in place. Once it is, a failing folder fsync is not
 * an error (the file is there; only its durability across a power cut is in doubt): it is
 * returned, for the caller to log.
 */
export function replaceFileDurably(path: string, text: string, mode = 0o644): { folderSyncError?: unknown } {
  const temporary = `${path}.tmp`;
  const fd = openSync(temporary, 'w', mode);
  try {
    writeFileSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, path);
  try {
    const folder = openSync(dirname(path), 'r');
    try {
      fsyncSync(folder);
    } finally {
      closeSync(folder);
    }
    return {};
  } catch (error) {
    return { folderSyncError: error };
  }
}
