import { readFileSync, renameSync, rmSync } from 'node:fs';
import { replaceFileDurably } from '../shared/durable-file';
import { errorMessage, type Logger } from '../shared/logger';
import { RECORD_KINDS } from '../shared/records';

// The loss journal's file and its store note (docs/RELIABILITY.md); what they mean for the
// accounting is in Acquisition, which keeps them.

/** The loss journal's file name, beside the store file. */
export const LOSS_JOURNAL_FILE = 'sensor-acquisition-loss-journal.json';
/** The store note the loss journal's progress is kept under (StreamStore AppendNote). */
export const LOSS_JOURNAL_NOTE = 'note:acquisition-loss-journal';

/**
 * What the loss journal file and its store note hold: samples of a process held in memory
 * (pending, or dropped past maxPendingRecords and not yet recorded), per stream, that the process
 * ending then would lose. The note is the same, minus what appends have stored since the file.
 */
export interface JournalState {
  id: string;
  remaining: Record<string, number>;
}

/** More samples than any configuration can hold in memory (maxPendingRecords at most 10,000,000, plus overflow counts). */
const MAX_JOURNAL_COUNT = 1_000_000_000;

/** A journal's per-stream counts, checked, or why they cannot be trusted into the store. */
function checkedRemaining(value: unknown): Record<string, number> | string {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'remaining is not an object';
  const out: Record<string, number> = {};
  for (const [stream, count] of Object.entries(value)) {
    if (!RECORD_KINDS.has(stream)) return `remaining names "${stream.slice(0, 64)}", which is not a stream`;
    if (!Number.isSafeInteger(count) || (count as number) < 0 || (count as number) > MAX_JOURNAL_COUNT) return `remaining.${stream} is not a count: ${JSON.stringify(count)}`;
    if ((count as number) > 0) out[stream] = count as number;
  }
  return out;
}

/** A journal state from its JSON text (file or note), or why it cannot be trusted. */
function parseJournal(text: string): (JournalState & { epoch?: string }) | string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    return `not JSON: ${errorMessage(error)}`;
  }
  const journal = parsed as { id?: unknown; epoch?: unknown; remaining?: unknown } | null;
  if (typeof journal !== 'object' || journal === null || typeof journal.id !== 'string') return 'not an object with a string id';
  const remaining = checkedRemaining(journal.remaining);
  if (typeof remaining === 'string') return remaining;
  return { id: journal.id, remaining, ...(typeof journal.epoch === 'string' ? { epoch: journal.epoch } : {}) };
}

/** The note's value for a journal state. */
export function journalNoteValue(state: JournalState): string {
  return JSON.stringify({ id: state.id, remaining: state.remaining });
}

/** A note's state, or undefined (logged) when it cannot be trusted. */
export function parseJournalNote(text: string, logger: Logger): JournalState | undefined {
  const parsed = parseJournal(text);
  if (typeof parsed !== 'string') return { id: parsed.id, remaining: parsed.remaining };
  logger.error('the loss journal note is not valid; counting the whole journal as lost', { reason: parsed, note: text.slice(0, 200) });
  return undefined;
}

/** The journal file: read checked, written durably, removed; each failure logged where it happens. */
export class LossJournalFile {
  constructor(
    readonly path: string,
    private readonly logger: Logger,
  ) {}

  /** The file's state, or undefined when there is none; a damaged or tampered one is set aside with an error, never trusted into the store. */
  read(): (JournalState & { epoch?: string }) | undefined {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') this.logger.error('loss journal unreadable; samples a previous process held may be lost unreported', { path: this.path, error: errorMessage(error) });
      return undefined;
    }
    const parsed = parseJournal(text);
    if (typeof parsed !== 'string') return parsed;
    this.logger.error('loss journal is not valid; set aside, and what it named is lost unreported', { path: this.path, reason: parsed, setAsideAs: `${this.path}.invalid` });
    try {
      renameSync(this.path, `${this.path}.invalid`);
    } catch (error) {
      this.logger.error('could not set the invalid loss journal aside', { path: this.path, error: errorMessage(error) });
    }
    return undefined;
  }

  /**
   * Durable before any append can carry its id: after a power cut, the file and the store's note
   * must agree on which is which. False when the file could not be put in place.
   */
  write(state: JournalState, epoch: string): boolean {
    try {
      const { folderSyncError } = replaceFileDurably(this.path, JSON.stringify({ id: state.id, epoch, remaining: state.remaining, writtenAt: new Date().toISOString() }));
      // Renamed, it is the journal: the next process reads it whatever the folder's fsync did.
      if (folderSyncError) this.logger.warn('could not fsync the loss journal\'s folder; a power cut now may leave the previous journal', { path: this.path, error: errorMessage(folderSyncError) });
      return true;
    } catch (error) {
      this.logger.error('could not write the loss journal; samples held in memory are lost unreported if this process ends now', { path: this.path, error: errorMessage(error) });
      return false;
    }
  }

  remove(): void {
    try {
      rmSync(this.path, { force: true });
    } catch (error) {
      // Harmless: the store note says nothing of it remains.
      this.logger.warn('could not remove the loss journal', { path: this.path, error: errorMessage(error) });
    }
  }
}
