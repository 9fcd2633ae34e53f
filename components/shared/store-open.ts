import { Backoff, sleep } from './backoff';
import { errorMessage, type Logger } from './logger';
import { StoreCorruptError, StreamStore } from './store';

/** Name of the store file inside StreamBuffer's work folder. */
export const STORE_FILE_NAME = 'stream-store.sqlite';

/**
 * The store path comes from STORE_PATH, which each recipe sets from
 * {com.elevator.StreamBuffer:work:path}: the file lives in StreamBuffer's work folder.
 */
export function storePathFromEnv(): string {
  const path = process.env.STORE_PATH;
  if (!path) throw new Error('STORE_PATH is not set; the recipe sets it to the StreamBuffer work folder');
  return path;
}

/**
 * Opens the store as a non-owner. A corrupt file is the owner's (StreamBuffer's) to quarantine,
 * so a non-owner waits for that with backoff instead of crash-looping into BROKEN.
 */
export async function openStoreWhenHealthy(path: string, logger: Logger, signal?: AbortSignal): Promise<StreamStore> {
  const backoff = new Backoff(500, 10_000);
  for (;;) {
    try {
      return await StreamStore.open(path, { owner: false, logger });
    } catch (error) {
      if (!(error instanceof StoreCorruptError) || signal?.aborted) throw error;
      const delay = backoff.nextDelayMs();
      logger.warn('store is corrupt; waiting for StreamBuffer to quarantine it', { path, delayMs: delay, error: errorMessage(error) });
      await sleep(delay, signal);
    }
  }
}
