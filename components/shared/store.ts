import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, statSync, statfsSync } from 'node:fs';
import { dirname } from 'node:path';
import sqlite3 from 'sqlite3';
import { Backoff, sleep } from './backoff';
import { errorMessage, type Logger } from './logger';

/**
 * The stream store: one SQLite file in WAL mode, shared by three processes. SensorAcquisition
 * appends, StreamBuffer (the owner) enforces retention and checkpoints, MqttPublisher reads,
 * marks, applies acks, serves backfill and reports losses. Every write is one BEGIN IMMEDIATE
 * transaction, so writers from different processes queue on SQLite's write lock (busy_timeout)
 * instead of failing halfway, and a process killed mid-write leaves the last committed state.
 *
 * Accounting invariant (docs/CONTRACTS.md): every seq 1..appended of a stream is, at any commit,
 * exactly one of: still in `records` (above the watermark), inside one `drop_log` range (dropped
 * by a named retention rule), or at or below the cloud's watermark (archived or a permanent gap).
 */

export const STORE_SCHEMA_VERSION = 2;

/**
 * Long enough to outlast any single write transaction in this module (the longest is one
 * eviction chunk or a TRUNCATE checkpoint of a busy WAL), short enough that a stuck writer
 * surfaces as an error instead of a silent stall.
 */
export const DEFAULT_BUSY_TIMEOUT_MS = 10_000;

/** Rows evicted per retention transaction, so a large cut never holds the write lock for long. */
const EVICTION_CHUNK = 2_000;

/** Disk-guard eviction batches per enforceRetention call; the next call goes on if more is needed. */
const DISK_GUARD_MAX_BATCHES = 50;

/** Free pages handed back per incremental_vacuum transaction (8 MiB at the default 4 KiB page). */
const VACUUM_STEP_PAGES = 2_048;

/** Largest range requeueRange accepts: the backfill caller limits requests to far less (10,000). */
export const MAX_REQUEUE_RANGE = 100_000;

export const DROP_REASON_BYTE_CAP = 'byte-cap';
export const DROP_REASON_AGE_CAP = 'age-cap';
export const DROP_REASON_DISK_GUARD = 'disk-guard';

/** Samples the acquisition could not keep in memory while the store refused them (maxPendingRecords). */
export const DROP_REASON_ACQUISITION_OVERFLOW = 'acquisition-overflow';

/** The named retention rules a record can be dropped by (docs/CONTRACTS.md "Loss report"). */
export type DropReason = typeof DROP_REASON_BYTE_CAP | typeof DROP_REASON_AGE_CAP | typeof DROP_REASON_DISK_GUARD;
/** Every reason a drop_log range can have: a retention rule, or samples lost before they were stored. */
export type LoggedDropReason = DropReason | typeof DROP_REASON_ACQUISITION_OVERFLOW;

/** Why a seq asked for by a backfill is not in the store. */
export type MissingReason = 'deleted-after-ack' | LoggedDropReason | 'not-sampled' | 'unknown';

/**
 * Samples of one stream that were dropped before they could be stored. Appended with the next
 * records, they take seqs of their own, written straight to drop_log: the cloud learns of them as
 * an exact range with its reason, like any retention drop, instead of never knowing they existed.
 */
/**
 * A value a writer keeps in the store with an append, in the same transaction: a record of what
 * it has stored that survives exactly as far as the append does. Keys start with "note:".
 */
export interface AppendNote {
  key: string;
  value: string;
}

export interface UnstoredSamples {
  stream: string;
  count: number;
  /** Data bytes of the samples, for the drop statistics. */
  bytes: number;
}

/** A note key cannot be one of the store's own meta keys (epoch, schema version, ...). */
function assertNoteKey(key: unknown): void {
  if (typeof key !== 'string' || !/^note:[\w.:-]{1,120}$/.test(key)) throw new TypeError(`note key must be "note:" and 1-120 of [A-Za-z0-9_.:-], got ${JSON.stringify(key)}`);
}

export class StoreSchemaError extends Error {
  override readonly name = 'StoreSchemaError';
  constructor(
    readonly path: string,
    readonly found: string,
    readonly expected: number,
  ) {
    super(`stream store ${path} has schema version ${found}, this build expects version ${expected} (and migrates version 1)`);
  }
}

export class StoreCorruptError extends Error {
  override readonly name = 'StoreCorruptError';
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`stream store ${path} is corrupt (${reason}); its owner will quarantine it and start a new epoch`);
  }
}

/** A request names an epoch this store file is not in. */
export class StoreEpochError extends Error {
  override readonly name = 'StoreEpochError';
  constructor(
    readonly requested: string,
    readonly current: string,
  ) {
    super(`epoch ${requested} is not this store's epoch ${current}; check the epoch before asking the store`);
  }
}

export interface AppendInput {
  stream: string;
  priority: number;
  /** Wall-clock ms. */
  time: number;
  /** Monotonic ms. */
  mono: number;
  data: Record<string, unknown>;
  /** Wall-clock sync state when sampled (ClockSync); absent means unknown. */
  clock?: ClockSync;
}

/** Whether the wall clock could be trusted when a record was stamped. */
export type ClockSync = 'synced' | 'unsynced' | 'unknown';
const CLOCK_STATES: readonly string[] = ['synced', 'unsynced', 'unknown'];

export interface PendingRecord {
  stream: string;
  seq: number;
  time: number;
  mono: number;
  priority: number;
  /** Parsed from dataJson on first use: the publisher sends the text as it is and never pays for it. */
  readonly data: Record<string, unknown>;
  /** The data as stored: JSON.stringify output from the append. */
  dataJson: string;
  bytes: number;
  sentAt: number | null;
  clock: ClockSync | null;
  /**
   * The envelope this record was first sent in (seqFrom..seqTo), null until then. A resend sends
   * exactly that range again, so the cloud's key for these records never changes: several ingest
   * instances need no shared state to dedupe (docs/SCALING.md).
   */
  envelope: { from: number; to: number } | null;
}

export interface StreamStats {
  stream: string;
  /** Highest seq assigned. */
  appended: number;
  /** Highest acked seq. */
  watermark: number;
  backlogRecords: number;
  backlogBytes: number;
  unsentRecords: number;
  oldestBacklogTime: number | null;
  /** Records dropped by policy, by reason. */
  drops: Record<string, number>;
}

export interface StoreStats {
  epoch: string;
  previousEpoch: string | null;
  streams: StreamStats[];
  backlogRecords: number;
  backlogBytes: number;
  /** Main file + WAL. */
  fileBytes: number;
  /** Bytes available to this process on the filesystem holding the store (statfs), null if it cannot be read. */
  freeBytes: number | null;
}

export interface OpenOptions {
  owner: boolean;
  logger: Logger;
  busyTimeoutMs?: number;
  /**
   * Records inserted per INSERT statement in append(). Each statement is one round trip through
   * the sqlite3 binding's queue, which bounded appends at about 10,000 records/s with one row per
   * statement (docs/PERFORMANCE.md). 1 is that old path, kept for the benchmark's comparison.
   */
  rowsPerInsert?: number;
}

/** 8 bound values per row; SQLite allows 32,766 per statement since 3.32. */
export const DEFAULT_ROWS_PER_INSERT = 500;
const MAX_ROWS_PER_INSERT = 4000;

export interface StreamDrop {
  count: number;
  bytes: number;
  firstSeq: number;
  lastSeq: number;
}

/** One contiguous run of one stream's seqs dropped by one retention rule: every seq in seqFrom..seqTo was dropped. */
export interface DropRange {
  id: number;
  stream: string;
  epoch: string;
  reason: LoggedDropReason;
  seqFrom: number;
  seqTo: number;
  count: number;
  /** Wall-clock ms of the eviction. */
  droppedAt: number;
}

/** A range a retention rule evicted, with its data bytes. */
export type EvictedRange = DropRange & { reason: DropReason; bytes: number };

export interface RetentionLimits {
  /** Byte cap on the backlog's record data (rule `byte-cap`). */
  maxBytes: number;
  /** Age cap by wall-clock `time` (rule `age-cap`); undefined disables it. */
  maxAgeMs?: number;
  /** Disk-space guard (rule `disk-guard`): keep at least this many bytes free; undefined or 0 disables it. */
  minFreeBytes?: number;
  /** Free bytes of the filesystem holding the store; defaults to statfs of its folder. For tests. */
  freeBytes?: () => number;
  /** Wall-clock ms taken as "now" for the age cap and `droppedAt`; defaults to Date.now(). */
  now?: number;
}

export interface RetentionResult {
  dropped: number;
  droppedBytes: number;
  /** What was evicted in this call, per stream, all reasons together. */
  byStream: Record<string, StreamDrop>;
  /** Records evicted in this call, per rule. */
  byReason: Partial<Record<DropReason, number>>;
  /** Every drop_log range written by this call, in the order written. */
  ranges: EvictedRange[];
  /** Free bytes the disk guard saw last (filesystem free + free pages inside the file); null when the guard did not run. */
  freeBytes: number | null;
}

export interface AckResult {
  applied: boolean;
  deleted: number;
}

export interface RequeueResult {
  /** Records of the range present in the store; all of them are pending (unsent) now. */
  requeued: number;
  /** The absent seqs of the range as contiguous runs, ascending, each with why it is absent. */
  missing: Array<{ from: number; to: number; reason: MissingReason }>;
}

export interface EpochStreamInfo {
  stream: string;
  /** Highest seq the old file had assigned. */
  appended: number;
  /** Highest seq the old file had seen acknowledged. */
  watermark: number;
}

export interface PreviousEpochInfo {
  /** The quarantined file's epoch; null when that file was unreadable. */
  epoch: string | null;
  /** Per stream of the quarantined file; null when its `streams` table was unreadable. */
  streams: EpochStreamInfo[] | null;
  /** When the epoch report was published (markPreviousEpochReported), null until then. */
  reportedAt: number | null;
}

// Version 1 of the schema, kept verbatim: a new file is created with it and then migrated, so
// creating and migrating run the same statements.
// Counters kept in `streams` (backlog_records, backlog_bytes, unsent_records) are updated in
// the same transaction as the rows they count: retention runs every few seconds and stats feed
// health, and summing a million-row table that often is too slow on a small device.
const SCHEMA_V1_SQL = `
CREATE TABLE IF NOT EXISTS meta (
  key TEXT PRIMARY KEY,
  value TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS streams (
  stream TEXT PRIMARY KEY,
  next_seq INTEGER NOT NULL,
  watermark INTEGER NOT NULL DEFAULT 0,
  backlog_records INTEGER NOT NULL DEFAULT 0,
  backlog_bytes INTEGER NOT NULL DEFAULT 0,
  unsent_records INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (
  id INTEGER PRIMARY KEY,
  stream TEXT NOT NULL,
  seq INTEGER NOT NULL,
  time INTEGER NOT NULL,
  mono REAL NOT NULL,
  priority INTEGER NOT NULL,
  data TEXT NOT NULL,
  bytes INTEGER NOT NULL,
  sent_at INTEGER,
  UNIQUE (stream, seq)
);
CREATE INDEX IF NOT EXISTS records_eviction ON records (priority, id, bytes);
CREATE TABLE IF NOT EXISTS drops (
  stream TEXT NOT NULL,
  reason TEXT NOT NULL,
  count INTEGER NOT NULL,
  bytes INTEGER NOT NULL,
  first_seq INTEGER NOT NULL,
  last_seq INTEGER NOT NULL,
  PRIMARY KEY (stream, reason)
) WITHOUT ROWID;
`;
// Why `records` is a rowid table and not WITHOUT ROWID on (stream, seq): retention evicts the
// oldest records store-wide, and seq is only ordered within one stream (a 10 Hz raw stream at
// seq 100000 is not older than an event stream at seq 50). A rowid without AUTOINCREMENT is
// max(rowid)+1 at insert, so it always sorts after every row still present: insertion order.
// UNIQUE (stream, seq) serves pending reads in seq order, ack deletes and gap updates.

// Version 2 adds the exact drop ranges (loss reports, backfill answers) and the age index.
// `drops` stays as the per-(stream, reason) aggregate for stats. drop_log rows are written in the
// eviction's own transaction and never modified afterwards except for reported_at, so a reader
// that reports a row reports exactly what it read. Reported rows at or below the watermark are
// pruned by applyAck: the cloud will not ask for them again.
const SCHEMA_V2_SQL = `
CREATE TABLE IF NOT EXISTS drop_log (
  id INTEGER PRIMARY KEY,
  stream TEXT NOT NULL,
  epoch TEXT NOT NULL,
  reason TEXT NOT NULL,
  seq_from INTEGER NOT NULL,
  seq_to INTEGER NOT NULL,
  count INTEGER NOT NULL,
  bytes INTEGER NOT NULL,
  dropped_at INTEGER NOT NULL,
  reported_at INTEGER
);
CREATE INDEX IF NOT EXISTS drop_log_unreported ON drop_log (id) WHERE reported_at IS NULL;
CREATE INDEX IF NOT EXISTS drop_log_stream ON drop_log (stream, seq_from);
CREATE INDEX IF NOT EXISTS records_age ON records (time);
`;

// Meta keys added by version 2. `replaced_epoch_at` is set (ms) when this file began after its
// owner quarantined a corrupt file; `previous_streams` is that file's per-stream loss window as
// JSON (NULL when unreadable); `previous_reported_at` is set once the epoch report went out.
const META_V2_KEYS = ['previous_streams', 'replaced_epoch_at', 'previous_reported_at'] as const;

interface SqliteError extends Error {
  code?: string;
}

function sqliteCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null ? (error as SqliteError).code : undefined;
}

function isCorruptionError(error: unknown): boolean {
  const code = sqliteCode(error);
  return code === 'SQLITE_CORRUPT' || code === 'SQLITE_NOTADB';
}

function isBusyError(error: unknown): boolean {
  const code = sqliteCode(error);
  return code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED';
}

/** What a corrupt file can still tell about itself; each part null when unreadable. */
interface Remains {
  epoch: string | null;
  /** Per stream: highest seq assigned and acked, i.e. the loss window of the old epoch. */
  streams: EpochStreamInfo[] | null;
}

class CorruptionFound extends Error {
  constructor(
    readonly reason: string,
    readonly remains: Remains | null,
  ) {
    super(reason);
  }
}

/** Small promise wrappers over sqlite3's callback API. */
class Connection {
  constructor(private readonly db: sqlite3.Database) {}

  static open(path: string, readOnly: boolean): Promise<Connection> {
    const mode = readOnly ? sqlite3.OPEN_READONLY : sqlite3.OPEN_READWRITE | sqlite3.OPEN_CREATE;
    return new Promise((resolve, reject) => {
      const db = new sqlite3.Database(path, mode, (error) => {
        if (error) reject(error);
        else resolve(new Connection(db));
      });
    });
  }

  configureBusyTimeout(ms: number): void {
    this.db.configure('busyTimeout', ms);
  }

  run(sql: string, params: unknown[] = []): Promise<{ changes: number; lastID: number }> {
    return new Promise((resolve, reject) => {
      this.db.run(sql, params, function (this: sqlite3.RunResult, error: Error | null) {
        if (error) reject(error);
        else resolve({ changes: this.changes, lastID: this.lastID });
      });
    });
  }

  get<T>(sql: string, params: unknown[] = []): Promise<T | undefined> {
    return new Promise((resolve, reject) => {
      this.db.get<T>(sql, params, (error: Error | null, row: T) => {
        if (error) reject(error);
        else resolve(row);
      });
    });
  }

  all<T>(sql: string, params: unknown[] = []): Promise<T[]> {
    return new Promise((resolve, reject) => {
      this.db.all<T>(sql, params, (error: Error | null, rows: T[]) => {
        if (error) reject(error);
        else resolve(rows);
      });
    });
  }

  exec(sql: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.db.exec(sql, (error: Error | null) => {
        if (error) reject(error);
        else resolve();
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.db.close((error) => {
        if (error) reject(error);
        else resolve();
      });
    });
  }
}

interface StreamRow {
  stream: string;
  next_seq: number;
  watermark: number;
  backlog_records: number;
  backlog_bytes: number;
  unsent_records: number;
}

interface RecordRow {
  stream: string;
  seq: number;
  time: number;
  mono: number;
  priority: number;
  data: string;
  bytes: number;
  sent_at: number | null;
  clock: string | null;
  envelope_from: number | null;
  envelope_to: number | null;
}

interface DropLogRow {
  id: number;
  stream: string;
  epoch: string;
  reason: string;
  seq_from: number;
  seq_to: number;
  count: number;
  bytes: number;
  dropped_at: number;
}

/** One contiguous run of one stream's seqs selected for eviction. */
interface RunRow {
  stream: string;
  seq_from: number;
  seq_to: number;
  count: number;
  bytes: number;
  unsent: number;
}

/** The rows one eviction transaction takes: `where` over `records`, deterministic within the transaction. */
interface EvictionCut {
  where: string;
  params: unknown[];
}

interface OpenedFile {
  conn: Connection;
  epoch: string;
  previousEpoch: string | null;
  autoVacuum: boolean;
}

function assertName(value: unknown, what: string): asserts value is string {
  if (typeof value !== 'string' || value.length === 0) throw new TypeError(`${what} must be a non-empty string, got ${JSON.stringify(value)}`);
}

function assertInteger(value: unknown, what: string, min: number): asserts value is number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new RangeError(`${what} must be an integer >= ${min}, got ${String(value)}`);
  }
}

function assertFinite(value: unknown, what: string): asserts value is number {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new RangeError(`${what} must be a finite number, got ${String(value)}`);
}

/** Bytes available to an unprivileged writer on the filesystem holding `path`'s folder. */
function statfsFreeBytes(path: string): number {
  const fs = statfsSync(dirname(path));
  return Number(fs.bavail) * Number(fs.bsize);
}

export class StreamStore {
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(
    private readonly conn: Connection,
    readonly path: string,
    readonly epoch: string,
    readonly previousEpoch: string | null,
    private readonly logger: Logger,
    /** auto_vacuum = INCREMENTAL: set on files created by version 2; a migrated file reuses free pages instead. */
    private readonly autoVacuum: boolean,
    private readonly rowsPerInsert: number,
  ) {}

  /**
   * Opens (creating if absent) the store at `path`. A version-1 file is migrated in place, in one
   * transaction. Throws StoreSchemaError if the file carries any other schema version (the file is
   * left as it was), StoreCorruptError to a non-owner that finds a corrupt file. An owner that
   * finds a corrupt file quarantines it, starts a new epoch and records in the new file's meta
   * what the old one could still tell (previousEpochInfo).
   */
  static async open(path: string, options: OpenOptions): Promise<StreamStore> {
    const busyTimeoutMs = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
    assertInteger(busyTimeoutMs, 'busyTimeoutMs', 0);
    const logger = options.logger;
    const rowsPerInsert = options.rowsPerInsert ?? DEFAULT_ROWS_PER_INSERT;
    assertInteger(rowsPerInsert, 'rowsPerInsert', 1);
    if (rowsPerInsert > MAX_ROWS_PER_INSERT) throw new RangeError(`rowsPerInsert must be at most ${MAX_ROWS_PER_INSERT}, got ${rowsPerInsert}`);
    mkdirSync(dirname(path), { recursive: true });

    let predecessor: Remains | null = null;
    // A quarantine is followed by one fresh open; a second corrupt result would mean the new
    // file is corrupt too, which is a disk problem a retry loop cannot fix.
    for (let attempt = 0; attempt < 2; attempt += 1) {
      try {
        const opened = await retryWhileBusy(() => openFile(path, busyTimeoutMs, logger, predecessor), busyTimeoutMs);
        return new StreamStore(opened.conn, path, opened.epoch, opened.previousEpoch, logger, opened.autoVacuum, rowsPerInsert);
      } catch (error) {
        if (!(error instanceof CorruptionFound)) throw error;
        if (!options.owner || attempt > 0) throw new StoreCorruptError(path, error.reason);
        predecessor = await quarantine(path, error, logger, busyTimeoutMs);
      }
    }
    throw new StoreCorruptError(path, 'still corrupt after quarantine');
  }

  /** Appends records in ONE transaction; each gets the next seq of its stream, starting at 1. */
  async append(records: AppendInput[], unstored: UnstoredSamples[] = [], note?: AppendNote): Promise<Array<{ stream: string; seq: number }>> {
    if (note) assertNoteKey(note.key);
    for (const [index, lost] of unstored.entries()) {
      assertName(lost.stream, `unstored[${index}].stream`);
      assertInteger(lost.count, `unstored[${index}].count`, 1);
      assertInteger(lost.bytes, `unstored[${index}].bytes`, 0);
    }
    const prepared = records.map((record, index) => {
      const where = `records[${index}]`;
      assertName(record.stream, `${where}.stream`);
      assertInteger(record.priority, `${where}.priority`, 0);
      assertFinite(record.time, `${where}.time`);
      assertFinite(record.mono, `${where}.mono`);
      if (record.clock !== undefined && !CLOCK_STATES.includes(record.clock)) throw new TypeError(`${where}.clock must be one of ${CLOCK_STATES.join(', ')}`);
      if (typeof record.data !== 'object' || record.data === null || Array.isArray(record.data)) {
        throw new TypeError(`${where}.data must be a JSON object`);
      }
      const data = JSON.stringify(record.data);
      return { ...record, json: data, bytes: Buffer.byteLength(data) };
    });
    if (prepared.length === 0 && unstored.length === 0 && !note) return [];

    return this.write(async (conn) => {
      const next = new Map<string, number>();
      const added = new Map<string, { records: number; bytes: number }>();
      for (const stream of new Set([...unstored.map((u) => u.stream), ...prepared.map((r) => r.stream)])) {
        await conn.run('INSERT OR IGNORE INTO streams (stream, next_seq) VALUES (?, 1)', [stream]);
        const row = await conn.get<{ next_seq: number }>('SELECT next_seq FROM streams WHERE stream = ?', [stream]);
        next.set(stream, row!.next_seq);
        added.set(stream, { records: 0, bytes: 0 });
      }
      // The lost samples are older than every record of this call: their seqs come first.
      const now = Date.now();
      for (const lost of unstored) {
        const from = next.get(lost.stream)!;
        const to = from + lost.count - 1;
        next.set(lost.stream, to + 1);
        await conn.run(
          `INSERT INTO drop_log (stream, epoch, reason, seq_from, seq_to, count, bytes, dropped_at, reported_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)`,
          [lost.stream, this.epoch, DROP_REASON_ACQUISITION_OVERFLOW, from, to, lost.count, lost.bytes, now],
        );
        await countDrops(conn, lost.stream, DROP_REASON_ACQUISITION_OVERFLOW, { count: lost.count, bytes: lost.bytes, first: from, last: to });
      }
      const assigned: Array<{ stream: string; seq: number }> = [];
      const rows: unknown[][] = [];
      for (const record of prepared) {
        const seq = next.get(record.stream)!;
        next.set(record.stream, seq + 1);
        rows.push([record.stream, seq, record.time, record.mono, record.priority, record.json, record.bytes, record.clock ?? null]);
        const sum = added.get(record.stream)!;
        sum.records += 1;
        sum.bytes += record.bytes;
        assigned.push({ stream: record.stream, seq });
      }
      for (let i = 0; i < rows.length; i += this.rowsPerInsert) {
        const chunk = rows.slice(i, i + this.rowsPerInsert);
        await conn.run(
          `INSERT INTO records (stream, seq, time, mono, priority, data, bytes, clock) VALUES ${chunk.map(() => '(?, ?, ?, ?, ?, ?, ?, ?)').join(', ')}`,
          chunk.flat(),
        );
      }
      for (const [stream, sum] of added) {
        await conn.run(
          `UPDATE streams SET next_seq = ?, backlog_records = backlog_records + ?, backlog_bytes = backlog_bytes + ?,
             unsent_records = unsent_records + ? WHERE stream = ?`,
          [next.get(stream), sum.records, sum.bytes, sum.records, stream],
        );
      }
      if (note) await conn.run('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value', [note.key, note.value]);
      return assigned;
    });
  }

  /** The value an append last wrote under this note key (AppendNote), if any. */
  async note(key: string): Promise<string | undefined> {
    assertNoteKey(key);
    const row = await this.exclusive((conn) => conn.get<{ value: string | null }>('SELECT value FROM meta WHERE key = ?', [key]));
    return row?.value ?? undefined;
  }

  /** Every stream that has ever had a record in this epoch. */
  async streams(): Promise<string[]> {
    const rows = await this.exclusive((conn) => conn.all<{ stream: string }>('SELECT stream FROM streams ORDER BY stream'));
    return rows.map((r) => r.stream);
  }

  /** Up to `limit` records of `stream` never sent or last sent before `resendBefore`, ascending seq. */
  async readPending(stream: string, limit: number, resendBefore: number): Promise<PendingRecord[]> {
    assertName(stream, 'stream');
    assertInteger(limit, 'limit', 1);
    assertFinite(resendBefore, 'resendBefore');
    const rows = await this.exclusive((conn) =>
      conn.all<RecordRow>(
        `SELECT stream, seq, time, mono, priority, data, bytes, sent_at, clock, envelope_from, envelope_to FROM records
          WHERE stream = ? AND (sent_at IS NULL OR sent_at < ?) ORDER BY seq LIMIT ?`,
        [stream, resendBefore, limit],
      ),
    );
    return rows.map((r) => ({
      stream: r.stream,
      seq: r.seq,
      time: r.time,
      mono: r.mono,
      priority: r.priority,
      get data(): Record<string, unknown> {
        return JSON.parse(r.data) as Record<string, unknown>;
      },
      dataJson: r.data,
      bytes: r.bytes,
      sentAt: r.sent_at,
      clock: (r.clock as ClockSync | null) ?? null,
      envelope: r.envelope_from !== null && r.envelope_to !== null ? { from: r.envelope_from, to: r.envelope_to } : null,
    }));
  }

  /**
   * Stamps records seqFrom..seqTo (inclusive) of `stream` as sent at `at`, in the envelope
   * seqFrom..seqTo: the range a resend of any of them must use again.
   */
  async markSent(stream: string, seqFrom: number, seqTo: number, at: number): Promise<void> {
    assertName(stream, 'stream');
    assertInteger(seqFrom, 'seqFrom', 1);
    assertInteger(seqTo, 'seqTo', seqFrom);
    assertFinite(at, 'at');
    await this.write(async (conn) => {
      const first = await conn.run(
        'UPDATE records SET sent_at = ?, envelope_from = ?, envelope_to = ? WHERE stream = ? AND seq BETWEEN ? AND ? AND sent_at IS NULL',
        [at, seqFrom, seqTo, stream, seqFrom, seqTo],
      );
      // A resend re-stamps records already sent; only the first send changes the unsent count.
      await conn.run('UPDATE records SET sent_at = ?, envelope_from = ?, envelope_to = ? WHERE stream = ? AND seq BETWEEN ? AND ? AND sent_at IS NOT NULL', [
        at,
        seqFrom,
        seqTo,
        stream,
        seqFrom,
        seqTo,
      ]);
      if (first.changes > 0) {
        await conn.run('UPDATE streams SET unsent_records = unsent_records - ? WHERE stream = ?', [first.changes, stream]);
      }
    });
  }

  /**
   * Makes every unacknowledged record pending again. The publisher calls it when it starts: it
   * cannot know whether what it sent before a crash reached the cloud, and acks that arrived while
   * it was down were lost with its subscription. Resending is harmless: the cloud dedupes.
   */
  async markAllUnsent(): Promise<number> {
    return this.write(async (conn) => {
      const changed = await conn.run('UPDATE records SET sent_at = NULL WHERE sent_at IS NOT NULL');
      if (changed.changes > 0) {
        await conn.run('UPDATE streams SET unsent_records = (SELECT COUNT(*) FROM records r WHERE r.stream = streams.stream AND r.sent_at IS NULL)');
      }
      return changed.changes;
    });
  }

  /**
   * Applies the cloud's ack for one stream (docs/CONTRACTS.md "Ack"): deletes seq <= watermark.
   * The ack's gap list is information only and is not passed here: only a backfill request
   * (requeueRange) makes records pending again, so records merely in flight are not sent twice.
   * An ack for another epoch is ignored. The watermark never moves backwards (a QoS 1
   * redelivery of an older ack is normal) and never beyond the highest seq assigned (that would
   * be a cloud bug; clamped and logged). Reported drop ranges at or below the watermark are
   * pruned from drop_log: the cloud holds them as permanent gaps and will not ask again.
   */
  async applyAck(stream: string, epoch: string, watermark: number): Promise<AckResult> {
    assertName(stream, 'stream');
    assertInteger(watermark, 'watermark', 0);
    if (epoch !== this.epoch) {
      this.logger.info('ack for another epoch ignored', { stream, ackEpoch: epoch, epoch: this.epoch, watermark });
      return { applied: false, deleted: 0 };
    }
    return this.write(async (conn) => {
      const row = await conn.get<StreamRow>('SELECT * FROM streams WHERE stream = ?', [stream]);
      const highest = row ? row.next_seq - 1 : 0;
      let target = watermark;
      if (target > highest) {
        this.logger.warn('ack watermark beyond highest assigned seq, clamped', { stream, epoch, watermark, highest });
        target = highest;
      }
      if (!row) return { applied: true, deleted: 0 };
      const effective = Math.max(row.watermark, target);

      let deleted = 0;
      const gone = await conn.get<{ n: number; bytes: number | null; unsent: number | null }>(
        'SELECT COUNT(*) AS n, SUM(bytes) AS bytes, SUM(sent_at IS NULL) AS unsent FROM records WHERE stream = ? AND seq <= ?',
        [stream, effective],
      );
      if (gone && gone.n > 0) {
        await conn.run('DELETE FROM records WHERE stream = ? AND seq <= ?', [stream, effective]);
        deleted = gone.n;
        await conn.run(
          `UPDATE streams SET backlog_records = backlog_records - ?, backlog_bytes = backlog_bytes - ?,
             unsent_records = unsent_records - ? WHERE stream = ?`,
          [gone.n, gone.bytes ?? 0, gone.unsent ?? 0, stream],
        );
      }
      if (effective !== row.watermark) {
        await conn.run('UPDATE streams SET watermark = ? WHERE stream = ?', [effective, stream]);
        await conn.run('DELETE FROM drop_log WHERE stream = ? AND seq_to <= ? AND reported_at IS NOT NULL', [stream, effective]);
      }
      return { applied: true, deleted };
    });
  }

  /**
   * Serves one range of a cloud backfill request (docs/CONTRACTS.md "Backfill"), in one
   * transaction: the records of `stream` present in from..to become pending again (sent_at NULL,
   * unsent counter kept right) and go out in ordinary envelopes; the absent seqs come back as
   * contiguous runs with their reason: at or below the watermark `deleted-after-ack`; inside a
   * drop_log range that range's rule; above the highest seq assigned `not-sampled`; otherwise
   * `unknown` (not reachable through this module). Throws StoreEpochError for another epoch.
   */
  async requeueRange(stream: string, epoch: string, from: number, to: number): Promise<RequeueResult> {
    assertName(stream, 'stream');
    assertName(epoch, 'epoch');
    assertInteger(from, 'from', 1);
    assertInteger(to, 'to', from);
    if (to - from + 1 > MAX_REQUEUE_RANGE) {
      throw new RangeError(`requeueRange covers at most ${MAX_REQUEUE_RANGE} seqs, got ${from}..${to} (${to - from + 1})`);
    }
    if (epoch !== this.epoch) throw new StoreEpochError(epoch, this.epoch);
    return this.write(async (conn) => {
      const row = await conn.get<{ next_seq: number; watermark: number }>('SELECT next_seq, watermark FROM streams WHERE stream = ?', [stream]);
      const watermark = row?.watermark ?? 0;
      const appended = row ? row.next_seq - 1 : 0;
      // Whole envelopes go back: a record requeued alone would be resent under a new range, and
      // the cloud would store it a second time under another key. Envelopes are disjoint runs of
      // seqs, so widening to the first and last envelope touching from..to takes in no other record.
      const bounds = await conn.get<{ lo: number | null; hi: number | null }>(
        'SELECT MIN(envelope_from) AS lo, MAX(envelope_to) AS hi FROM records WHERE stream = ? AND seq BETWEEN ? AND ?',
        [stream, from, to],
      );
      const changed = await conn.run('UPDATE records SET sent_at = NULL WHERE stream = ? AND seq BETWEEN ? AND ? AND sent_at IS NOT NULL', [
        stream,
        Math.min(from, bounds?.lo ?? from),
        Math.max(to, bounds?.hi ?? to),
      ]);
      if (changed.changes > 0) {
        await conn.run('UPDATE streams SET unsent_records = unsent_records + ? WHERE stream = ?', [changed.changes, stream]);
      }
      // Present seqs as islands (gaps-and-islands: seq - row_number is constant along a run).
      const present = await conn.all<{ seq_from: number; seq_to: number; count: number }>(
        `SELECT MIN(seq) AS seq_from, MAX(seq) AS seq_to, COUNT(*) AS count FROM (
           SELECT seq, seq - ROW_NUMBER() OVER (ORDER BY seq) AS island FROM records WHERE stream = ? AND seq BETWEEN ? AND ?
         ) GROUP BY island ORDER BY seq_from`,
        [stream, from, to],
      );
      const drops = await conn.all<{ reason: string; seq_from: number; seq_to: number }>(
        'SELECT reason, seq_from, seq_to FROM drop_log WHERE stream = ? AND seq_from <= ? AND seq_to >= ? ORDER BY seq_from',
        [stream, to, from],
      );
      const missing: RequeueResult['missing'] = [];
      const add = (a: number, b: number, reason: MissingReason): void => {
        if (a > b) return;
        const last = missing[missing.length - 1];
        if (last && last.reason === reason && last.to + 1 === a) last.to = b;
        else missing.push({ from: a, to: b, reason });
      };
      const classify = (a: number, b: number): void => {
        add(a, Math.min(b, watermark), 'deleted-after-ack');
        let cursor = Math.max(a, watermark + 1);
        const end = Math.min(b, appended);
        for (const drop of drops) {
          if (cursor > end) break;
          if (drop.seq_to < cursor || drop.seq_from > end) continue;
          add(cursor, Math.min(drop.seq_from - 1, end), 'unknown');
          const lo = Math.max(cursor, drop.seq_from);
          const hi = Math.min(drop.seq_to, end);
          add(lo, hi, drop.reason as LoggedDropReason);
          cursor = Math.max(cursor, hi + 1);
        }
        add(cursor, end, 'unknown');
        add(Math.max(a, appended + 1), b, 'not-sampled');
      };
      let next = from;
      for (const island of present) {
        classify(next, island.seq_from - 1);
        next = island.seq_to + 1;
      }
      classify(next, to);
      return { requeued: present.reduce((n, p) => n + p.count, 0), missing };
    });
  }

  /**
   * Retention, in this order, each rule in transactions of at most 2000 rows:
   * 1. `age-cap`: records whose wall-clock `time` is before now - maxAgeMs, whatever their priority.
   * 2. `byte-cap`: while the backlog's data bytes exceed maxBytes, lowest priority first, then oldest
   *    (insertion order). The cap is on record data bytes, not file size: a SQLite file does not
   *    shrink when rows are deleted, so a file-size cap would keep evicting after space had already
   *    been freed inside it.
   * 3. `disk-guard`: while the filesystem holding the store has less than minFreeBytes free, lowest
   *    priority first, then oldest, then hands the space back (see diskGuard).
   * A record takes the first rule that drops it. Every eviction is counted in `drops` (aggregate)
   * and written to `drop_log` as exact contiguous seq runs, in the same transaction as the delete.
   */
  async enforceRetention(limits: RetentionLimits): Promise<RetentionResult> {
    assertInteger(limits.maxBytes, 'maxBytes', 0);
    if (limits.maxAgeMs !== undefined) assertInteger(limits.maxAgeMs, 'maxAgeMs', 1);
    if (limits.minFreeBytes !== undefined) assertInteger(limits.minFreeBytes, 'minFreeBytes', 0);
    const now = limits.now ?? Date.now();
    assertFinite(now, 'now');
    const result: RetentionResult = { dropped: 0, droppedBytes: 0, byStream: {}, byReason: {}, ranges: [], freeBytes: null };

    if (limits.maxAgeMs !== undefined) {
      const cutoff = now - limits.maxAgeMs;
      await this.evictWhile(result, DROP_REASON_AGE_CAP, now, (conn) => ageCut(conn, cutoff));
    }

    let recounted = false;
    await this.evictWhile(result, DROP_REASON_BYTE_CAP, now, async (conn) => {
      const total = await conn.get<{ bytes: number | null }>('SELECT SUM(backlog_bytes) AS bytes FROM streams');
      const excess = (total?.bytes ?? 0) - limits.maxBytes;
      if (excess <= 0) return null;
      const cut = await priorityCut(conn, excess);
      if (cut !== null) return cut;
      // The counters say there is a backlog but no row exists: they have drifted. Resync them
      // once, rather than loop forever.
      if (recounted) return null;
      recounted = true;
      this.logger.error('backlog counters disagree with records, recounting', { path: this.path, counted: total?.bytes });
      await recount(conn);
      return 'again';
    });

    if (limits.minFreeBytes !== undefined && limits.minFreeBytes > 0) {
      await this.diskGuard(result, limits.minFreeBytes, limits.freeBytes ?? (() => statfsFreeBytes(this.path)), now);
    }
    return result;
  }

  /** Up to `limit` drop ranges not yet reported to the cloud, oldest first. */
  async unreportedDrops(limit: number): Promise<DropRange[]> {
    assertInteger(limit, 'limit', 1);
    const rows = await this.exclusive((conn) =>
      conn.all<DropLogRow>(
        `SELECT id, stream, epoch, reason, seq_from, seq_to, count, bytes, dropped_at FROM drop_log
          WHERE reported_at IS NULL ORDER BY id LIMIT ?`,
        [limit],
      ),
    );
    return rows.map(toDropRange);
  }

  /** Marks drop ranges reported (in a loss report) at `at`; ids already reported or unknown are left alone. */
  async markDropsReported(ids: number[], at: number): Promise<void> {
    if (!Array.isArray(ids)) throw new TypeError('ids must be an array of drop range ids');
    for (const [i, id] of ids.entries()) assertInteger(id, `ids[${i}]`, 1);
    assertFinite(at, 'at');
    if (ids.length === 0) return;
    await this.write(async (conn) => {
      for (let i = 0; i < ids.length; i += 500) {
        const part = ids.slice(i, i + 500);
        await conn.run(`UPDATE drop_log SET reported_at = ? WHERE reported_at IS NULL AND id IN (${part.map(() => '?').join(', ')})`, [at, ...part]);
      }
    });
  }

  /**
   * What this file knows of the epoch it replaced: null unless it began after its owner
   * quarantined a corrupt file (docs/CONTRACTS.md "Epoch report").
   */
  async previousEpochInfo(): Promise<PreviousEpochInfo | null> {
    const rows = await this.exclusive((conn) =>
      conn.all<{ key: string; value: string | null }>(
        "SELECT key, value FROM meta WHERE key IN ('previous_epoch', 'previous_streams', 'replaced_epoch_at', 'previous_reported_at')",
      ),
    );
    const value = (key: string): string | null => rows.find((r) => r.key === key)?.value ?? null;
    if (value('replaced_epoch_at') === null) return null;
    const reported = value('previous_reported_at');
    return {
      epoch: value('previous_epoch'),
      streams: parseEpochStreams(value('previous_streams')),
      reportedAt: reported === null ? null : Number(reported),
    };
  }

  /** Records that the epoch report went out at `at`. The first time is kept; a no-op when there is no previous epoch. */
  async markPreviousEpochReported(at: number): Promise<void> {
    assertFinite(at, 'at');
    await this.write((conn) =>
      conn.run(
        `UPDATE meta SET value = ? WHERE key = 'previous_reported_at' AND value IS NULL
           AND EXISTS (SELECT 1 FROM meta WHERE key = 'replaced_epoch_at' AND value IS NOT NULL)`,
        [String(at)],
      ),
    );
  }

  async stats(): Promise<StoreStats> {
    // One read transaction, so the per-stream figures are one consistent snapshot even while
    // other processes write.
    const { streamRows, oldest, drops } = await this.exclusive(async (conn) => {
      await conn.exec('BEGIN');
      try {
        const streamRows = await conn.all<StreamRow>('SELECT * FROM streams ORDER BY stream');
        const oldest = new Map<string, number | null>();
        for (const row of streamRows) {
          const first = await conn.get<{ time: number }>('SELECT time FROM records WHERE stream = ? ORDER BY seq LIMIT 1', [row.stream]);
          oldest.set(row.stream, first ? first.time : null);
        }
        const drops = await conn.all<{ stream: string; reason: string; count: number }>('SELECT stream, reason, count FROM drops');
        return { streamRows, oldest, drops };
      } finally {
        await conn.exec('COMMIT');
      }
    });
    const streams: StreamStats[] = streamRows.map((row) => ({
      stream: row.stream,
      appended: row.next_seq - 1,
      watermark: row.watermark,
      backlogRecords: row.backlog_records,
      backlogBytes: row.backlog_bytes,
      unsentRecords: row.unsent_records,
      oldestBacklogTime: oldest.get(row.stream) ?? null,
      drops: {},
    }));
    for (const drop of drops) {
      let entry = streams.find((s) => s.stream === drop.stream);
      if (!entry) {
        // Not reachable through this module (a drop implies a stream row), kept so a drop is
        // never hidden from stats.
        entry = { stream: drop.stream, appended: 0, watermark: 0, backlogRecords: 0, backlogBytes: 0, unsentRecords: 0, oldestBacklogTime: null, drops: {} };
        streams.push(entry);
      }
      entry.drops[drop.reason] = drop.count;
    }
    let freeBytes: number | null = null;
    try {
      freeBytes = statfsFreeBytes(this.path);
    } catch {
      // Reported as unknown; the disk guard logs its own failure to measure.
    }
    return {
      epoch: this.epoch,
      previousEpoch: this.previousEpoch,
      streams,
      backlogRecords: streams.reduce((n, s) => n + s.backlogRecords, 0),
      backlogBytes: streams.reduce((n, s) => n + s.backlogBytes, 0),
      fileBytes: fileSize(this.path) + fileSize(`${this.path}-wal`),
      freeBytes,
    };
  }

  /** PRAGMA wal_checkpoint(TRUNCATE). A reader holding the WAL makes it busy, which is not an error. */
  async checkpoint(): Promise<void> {
    await this.exclusive(async (conn) => {
      try {
        const row = await conn.get<{ busy: number; log: number; checkpointed: number }>('PRAGMA wal_checkpoint(TRUNCATE)');
        if (row && row.busy !== 0) this.logger.debug('checkpoint incomplete, WAL in use by another connection', { path: this.path, ...row });
      } catch (error) {
        if (!isBusyError(error)) throw error;
        this.logger.debug('checkpoint skipped, store busy', { path: this.path, error: errorMessage(error) });
      }
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue.catch(() => undefined);
    await this.conn.close();
  }

  /**
   * Runs eviction transactions of one rule until `cut` finds nothing to take. `cut` runs inside
   * the transaction; 'again' means it repaired something and wants another look.
   */
  private async evictWhile(
    result: RetentionResult,
    reason: DropReason,
    now: number,
    cut: (conn: Connection) => Promise<EvictionCut | null | 'again'>,
  ): Promise<void> {
    for (;;) {
      const runs = await this.write(async (conn) => {
        const chosen = await cut(conn);
        if (chosen === null) return null;
        if (chosen === 'again') return [];
        return this.evict(conn, reason, chosen, now);
      });
      if (runs === null) return;
      addRuns(result, reason, runs);
      // A writer may append between chunks; the next iteration re-reads and stops when done.
    }
  }

  /** Deletes the rows of `cut` and accounts for them (counters, drops, drop_log), inside the caller's transaction. */
  private async evict(conn: Connection, reason: DropReason, cut: EvictionCut, now: number): Promise<EvictedRange[]> {
    const runs = await conn.all<RunRow>(
      `SELECT stream, MIN(seq) AS seq_from, MAX(seq) AS seq_to, COUNT(*) AS count, SUM(bytes) AS bytes, SUM(sent_at IS NULL) AS unsent
         FROM (SELECT stream, seq, bytes, sent_at, seq - ROW_NUMBER() OVER (PARTITION BY stream ORDER BY seq) AS island
                 FROM records WHERE ${cut.where})
        GROUP BY stream, island ORDER BY stream, seq_from`,
      cut.params,
    );
    if (runs.length === 0) return [];
    await conn.run(`DELETE FROM records WHERE ${cut.where}`, cut.params);
    const perStream = new Map<string, { count: number; bytes: number; unsent: number; first: number; last: number }>();
    const written: EvictedRange[] = [];
    for (const run of runs) {
      const sum = perStream.get(run.stream) ?? { count: 0, bytes: 0, unsent: 0, first: run.seq_from, last: run.seq_to };
      sum.count += run.count;
      sum.bytes += run.bytes;
      sum.unsent += run.unsent;
      sum.first = Math.min(sum.first, run.seq_from);
      sum.last = Math.max(sum.last, run.seq_to);
      perStream.set(run.stream, sum);
      const inserted = await conn.run(
        `INSERT INTO drop_log (stream, epoch, reason, seq_from, seq_to, count, bytes, dropped_at, reported_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL)`,
        [run.stream, this.epoch, reason, run.seq_from, run.seq_to, run.count, run.bytes, now],
      );
      written.push({
        id: inserted.lastID,
        stream: run.stream,
        epoch: this.epoch,
        reason,
        seqFrom: run.seq_from,
        seqTo: run.seq_to,
        count: run.count,
        bytes: run.bytes,
        droppedAt: now,
      });
    }
    for (const [stream, sum] of perStream) {
      await conn.run(
        `UPDATE streams SET backlog_records = backlog_records - ?, backlog_bytes = backlog_bytes - ?,
           unsent_records = unsent_records - ? WHERE stream = ?`,
        [sum.count, sum.bytes, sum.unsent, stream],
      );
      await countDrops(conn, stream, reason, sum);
    }
    return written;
  }

  /**
   * The disk-space guard. "Available" is the filesystem's free bytes plus the free pages inside
   * the store file: appends reuse free pages before the file grows, so while that sum stays at or
   * above minFreeBytes the store cannot push the filesystem below the minimum. Deleting rows does
   * not shrink a SQLite file; what it does:
   * - a TRUNCATE checkpoint gives the WAL's space back;
   * - in a file created by schema 2 (auto_vacuum = INCREMENTAL) incremental_vacuum moves the free
   *   pages to the end and the checkpoint truncates the main file, so the space returns to the
   *   filesystem;
   * - in a migrated file (auto_vacuum NONE, which only a full VACUUM could change) freed pages stay
   *   inside the file for reuse: the guard stops the file from growing, it cannot shrink it.
   * A batch that frees nothing (a reader pins the WAL, or another program fills the disk as fast)
   * ends the guard for this call with a warning, so it never empties the store chasing space it
   * cannot win back; the next call tries again.
   */
  private async diskGuard(result: RetentionResult, minFreeBytes: number, fsFree: () => number, now: number): Promise<void> {
    const measure = async (): Promise<number | null> => {
      let free: number;
      try {
        free = fsFree();
        assertFinite(free, 'free bytes');
      } catch (error) {
        this.logger.warn('disk guard skipped, free space unknown', { path: this.path, error: errorMessage(error) });
        return null;
      }
      const pages = await this.exclusive(async (conn) => {
        const count = await conn.get<{ freelist_count: number }>('PRAGMA freelist_count');
        const size = await conn.get<{ page_size: number }>('PRAGMA page_size');
        return (count?.freelist_count ?? 0) * (size?.page_size ?? 0);
      });
      return free + pages;
    };
    let available = await measure();
    if (available === null) return;
    if (available < minFreeBytes) {
      await this.releaseSpace();
      available = await measure();
      if (available === null) return;
    }
    for (let batch = 0; available < minFreeBytes && batch < DISK_GUARD_MAX_BATCHES; batch += 1) {
      const deficit = minFreeBytes - available;
      const runs = await this.write(async (conn) => {
        const cut = await priorityCut(conn, deficit);
        return cut === null ? null : this.evict(conn, DROP_REASON_DISK_GUARD, cut, now);
      });
      if (runs === null) {
        this.logger.warn('disk guard: the store is empty and free space is still below the minimum', { path: this.path, available, minFreeBytes });
        break;
      }
      addRuns(result, DROP_REASON_DISK_GUARD, runs);
      await this.releaseSpace();
      const after = await measure();
      if (after === null) return;
      if (after <= available) {
        this.logger.warn('disk guard: evicting freed no space, stopping until the next run', {
          path: this.path,
          before: available,
          after,
          minFreeBytes,
          autoVacuum: this.autoVacuum,
        });
        available = after;
        break;
      }
      available = after;
    }
    result.freeBytes = available;
  }

  /** Hands free pages back to the filesystem (auto_vacuum files only) and truncates the WAL. */
  private async releaseSpace(): Promise<void> {
    if (this.autoVacuum) {
      // Bounded steps, each its own short transaction, so other writers are not held up.
      for (let step = 0; step < 64; step += 1) {
        const left = await this.write(async (conn) => {
          await conn.exec(`PRAGMA incremental_vacuum(${VACUUM_STEP_PAGES})`);
          return (await conn.get<{ freelist_count: number }>('PRAGMA freelist_count'))?.freelist_count ?? 0;
        });
        if (left === 0) break;
      }
    }
    await this.checkpoint();
  }

  /** Runs fn alone on this connection: sqlite3 would otherwise interleave two callers' statements. */
  private exclusive<T>(fn: (conn: Connection) => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new Error(`stream store ${this.path} is closed`));
    const run = this.queue.then(
      () => fn(this.conn),
      () => fn(this.conn),
    );
    this.queue = run.catch(() => undefined);
    return run.catch((error: unknown) => {
      throw translate(error, this.path);
    });
  }

  /** fn inside BEGIN IMMEDIATE ... COMMIT: takes the write lock up front (waiting up to busy_timeout) so the transaction never fails to upgrade halfway. */
  private write<T>(fn: (conn: Connection) => Promise<T>): Promise<T> {
    return this.exclusive(async (conn) => {
      await conn.exec('BEGIN IMMEDIATE');
      try {
        const result = await fn(conn);
        await conn.exec('COMMIT');
        return result;
      } catch (error) {
        await conn.exec('ROLLBACK').catch((rollbackError: unknown) => {
          // SQLite may already have rolled back (e.g. after SQLITE_FULL); nothing left to undo.
          this.logger.debug('rollback after failed write', { error: errorMessage(rollbackError) });
        });
        throw error;
      }
    });
  }
}

/**
 * The lowest-priority, oldest rows whose data bytes reach `bytes` (at most EVICTION_CHUNK rows):
 * everything up to (priority, id) of the cut row, in eviction order. Null when there is no row.
 */
async function priorityCut(conn: Connection, bytes: number): Promise<EvictionCut | null> {
  const candidates = await conn.all<{ priority: number; id: number; bytes: number }>('SELECT priority, id, bytes FROM records ORDER BY priority, id LIMIT ?', [
    EVICTION_CHUNK,
  ]);
  if (candidates.length === 0) return null;
  let freed = 0;
  let cut = candidates[candidates.length - 1]!;
  for (const candidate of candidates) {
    freed += candidate.bytes;
    cut = candidate;
    if (freed >= bytes) break;
  }
  return { where: 'priority < ? OR (priority = ? AND id <= ?)', params: [cut.priority, cut.priority, cut.id] };
}

/** Records with time < cutoff, oldest first, at most EVICTION_CHUNK of them (index records_age). Null when none. */
async function ageCut(conn: Connection, cutoff: number): Promise<EvictionCut | null> {
  const last = await conn.get<{ time: number; id: number }>('SELECT time, id FROM records WHERE time < ? ORDER BY time, id LIMIT 1 OFFSET ?', [
    cutoff,
    EVICTION_CHUNK - 1,
  ]);
  if (last) return { where: 'time < ? OR (time = ? AND id <= ?)', params: [last.time, last.time, last.id] };
  const any = await conn.get<{ one: number }>('SELECT 1 AS one FROM records WHERE time < ? LIMIT 1', [cutoff]);
  return any ? { where: 'time < ?', params: [cutoff] } : null;
}

function addRuns(result: RetentionResult, reason: DropReason, runs: EvictedRange[]): void {
  for (const run of runs) {
    result.ranges.push(run);
    result.dropped += run.count;
    result.droppedBytes += run.bytes;
    result.byReason[reason] = (result.byReason[reason] ?? 0) + run.count;
    const seen = result.byStream[run.stream];
    if (seen) {
      seen.count += run.count;
      seen.bytes += run.bytes;
      seen.firstSeq = Math.min(seen.firstSeq, run.seqFrom);
      seen.lastSeq = Math.max(seen.lastSeq, run.seqTo);
    } else {
      result.byStream[run.stream] = { count: run.count, bytes: run.bytes, firstSeq: run.seqFrom, lastSeq: run.seqTo };
    }
  }
}

/** Adds to the per-(stream, reason) aggregate of drops that stats report. */
async function countDrops(conn: Connection, stream: string, reason: LoggedDropReason, sum: { count: number; bytes: number; first: number; last: number }): Promise<void> {
  await conn.run(
    `INSERT INTO drops (stream, reason, count, bytes, first_seq, last_seq) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (stream, reason) DO UPDATE SET count = count + excluded.count, bytes = bytes + excluded.bytes,
         first_seq = MIN(first_seq, excluded.first_seq), last_seq = MAX(last_seq, excluded.last_seq)`,
    [stream, reason, sum.count, sum.bytes, sum.first, sum.last],
  );
}

function toDropRange(row: DropLogRow): DropRange {
  return {
    id: row.id,
    stream: row.stream,
    epoch: row.epoch,
    reason: row.reason as LoggedDropReason,
    seqFrom: row.seq_from,
    seqTo: row.seq_to,
    count: row.count,
    droppedAt: row.dropped_at,
  };
}

/** The JSON kept in meta.previous_streams, checked; null when absent or not the expected shape. */
function parseEpochStreams(json: string | null): EpochStreamInfo[] | null {
  if (json === null) return null;
  try {
    return checkEpochStreams(JSON.parse(json));
  } catch {
    return null;
  }
}

function checkEpochStreams(value: unknown): EpochStreamInfo[] | null {
  if (!Array.isArray(value)) return null;
  const out: EpochStreamInfo[] = [];
  for (const item of value) {
    if (typeof item !== 'object' || item === null) return null;
    const { stream, appended, watermark } = item as Record<string, unknown>;
    if (typeof stream !== 'string' || !Number.isSafeInteger(appended) || !Number.isSafeInteger(watermark)) return null;
    if ((appended as number) < 0 || (watermark as number) < 0) return null;
    out.push({ stream, appended: appended as number, watermark: watermark as number });
  }
  return out;
}

function translate(error: unknown, path: string): unknown {
  if (isCorruptionError(error)) return new StoreCorruptError(path, errorMessage(error));
  return error;
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

async function recount(conn: Connection): Promise<void> {
  await conn.run(
    `UPDATE streams SET
       backlog_records = (SELECT COUNT(*) FROM records r WHERE r.stream = streams.stream),
       backlog_bytes = (SELECT COALESCE(SUM(bytes), 0) FROM records r WHERE r.stream = streams.stream),
       unsent_records = (SELECT COUNT(*) FROM records r WHERE r.stream = streams.stream AND r.sent_at IS NULL)`,
  );
}

/**
 * SQLite's busy handler covers BEGIN IMMEDIATE, but switching a fresh file to WAL or recovering
 * another process's WAL at open can still report SQLITE_BUSY; retry those for up to busyTimeoutMs.
 */
async function retryWhileBusy<T>(fn: () => Promise<T>, budgetMs: number): Promise<T> {
  const backoff = new Backoff(10, 500);
  const deadline = Date.now() + budgetMs;
  for (;;) {
    try {
      return await fn();
    } catch (error) {
      if (!isBusyError(error) || Date.now() >= deadline) throw error;
      await sleep(backoff.nextDelayMs());
    }
  }
}

async function readSchemaVersion(conn: Connection): Promise<string | null> {
  const tables = await conn.all<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'");
  if (tables.length === 0) return null;
  if (!tables.some((t) => t.name === 'meta')) return 'none (not a stream store)';
  const row = await conn.get<{ value: string }>("SELECT value FROM meta WHERE key = 'schema_version'");
  return row ? String(row.value) : 'none (no schema_version)';
}

/** Version 2 also stamps each record's clock-sync state; ALTER TABLE has no IF NOT EXISTS for columns. */
async function addColumnIfMissing(conn: Connection, table: string, column: string, type: string): Promise<void> {
  const columns = await conn.all<{ name: string }>(`PRAGMA table_info(${table})`);
  if (!columns.some((c) => c.name === column)) await conn.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${type}`);
}

/** Versions this build opens: its own, and version 1, which it migrates. */
function isOpenableVersion(found: string | null): boolean {
  return found === null || found === '1' || found === String(STORE_SCHEMA_VERSION);
}

/**
 * Version 1 -> 2, inside the caller's transaction: drop_log and the age index, the new meta keys,
 * and the drops version 1 only counted, turned into exact ranges. In version 1 only acks (at or
 * below the watermark) and the byte cap deleted records, so every seq above the watermark and up
 * to the highest assigned that is absent was dropped by the byte cap. Their bytes are unknown (0).
 * A file that already names a previous epoch (a version-1 quarantine) gets its epoch report too,
 * with the old streams unknown: version 1 only logged them.
 */
async function migrateV1(conn: Connection, now: number): Promise<{ ranges: number }> {
  await conn.exec(SCHEMA_V2_SQL);
  const epoch = (await conn.get<{ value: string }>("SELECT value FROM meta WHERE key = 'epoch'"))?.value;
  if (!epoch) throw new Error('version-1 store has no epoch');
  const dropped = await conn.all<{ stream: string; reason: string }>('SELECT stream, reason FROM drops');
  let ranges = 0;
  for (const { stream, reason } of dropped) {
    const row = await conn.get<{ next_seq: number; watermark: number }>('SELECT next_seq, watermark FROM streams WHERE stream = ?', [stream]);
    if (!row) continue;
    const islands = await conn.all<{ seq_from: number; seq_to: number }>(
      `SELECT MIN(seq) AS seq_from, MAX(seq) AS seq_to FROM (
         SELECT seq, seq - ROW_NUMBER() OVER (ORDER BY seq) AS island FROM records WHERE stream = ? AND seq > ?
       ) GROUP BY island ORDER BY seq_from`,
      [stream, row.watermark],
    );
    const holes: Array<[number, number]> = [];
    let next = row.watermark + 1;
    for (const island of islands) {
      if (island.seq_from > next) holes.push([next, island.seq_from - 1]);
      next = island.seq_to + 1;
    }
    if (next <= row.next_seq - 1) holes.push([next, row.next_seq - 1]);
    for (const [from, to] of holes) {
      await conn.run(
        `INSERT INTO drop_log (stream, epoch, reason, seq_from, seq_to, count, bytes, dropped_at, reported_at) VALUES (?, ?, ?, ?, ?, ?, 0, ?, NULL)`,
        [stream, epoch, reason, from, to, to - from + 1, now],
      );
      ranges += 1;
    }
  }
  for (const key of META_V2_KEYS) await conn.run('INSERT OR IGNORE INTO meta (key, value) VALUES (?, NULL)', [key]);
  await conn.run(
    `UPDATE meta SET value = ? WHERE key = 'replaced_epoch_at' AND value IS NULL
       AND EXISTS (SELECT 1 FROM meta WHERE key = 'previous_epoch' AND value IS NOT NULL)`,
    [String(now)],
  );
  await conn.run("UPDATE meta SET value = ? WHERE key = 'schema_version'", [String(STORE_SCHEMA_VERSION)]);
  return { ranges };
}

async function openFile(path: string, busyTimeoutMs: number, logger: Logger, predecessor: Remains | null): Promise<OpenedFile> {
  // An existing file is checked on a read-only connection first: closing a read-write connection
  // checkpoints the WAL into the main file, which would alter a corrupt or foreign file before
  // it is quarantined or reported.
  const existing = fileSize(path) > 0;
  if (existing) await inspect(path, busyTimeoutMs);

  const conn = await Connection.open(path, false);
  try {
    conn.configureBusyTimeout(busyTimeoutMs);
    // auto_vacuum can only be chosen before the first page is written, and switching to WAL
    // writes it, so it comes first. INCREMENTAL keeps freed pages until the disk guard asks for
    // them back (PRAGMA incremental_vacuum); on an existing file the pragma changes nothing.
    if (!existing) await conn.exec('PRAGMA auto_vacuum = INCREMENTAL');
    const mode = await conn.get<{ journal_mode: string }>('PRAGMA journal_mode = WAL');
    if (mode?.journal_mode !== 'wal') throw new Error(`stream store ${path} could not switch to WAL (journal_mode is ${mode?.journal_mode})`);
    // In WAL mode synchronous=NORMAL may lose the last commits on power loss; FULL syncs the WAL
    // on every commit, so an append that returned is on disk (sqlite.org/pragma.html#pragma_synchronous).
    await conn.exec('PRAGMA synchronous = FULL');

    await conn.exec('BEGIN IMMEDIATE');
    let created = false;
    let migrated: { ranges: number } | null = null;
    const now = Date.now();
    try {
      // Re-read inside the write lock: another process may have created or migrated the file since inspect().
      const found = await readSchemaVersion(conn);
      if (!isOpenableVersion(found)) throw new StoreSchemaError(path, found!, STORE_SCHEMA_VERSION);
      if (found === '1') migrated = await migrateV1(conn, now);
      await conn.exec(SCHEMA_V1_SQL + SCHEMA_V2_SQL);
      await addColumnIfMissing(conn, 'records', 'clock', 'TEXT');
      // Added without a version bump: nullable columns an older build ignores, so a rollback of
      // the components to the previous version still opens this file.
      await addColumnIfMissing(conn, 'records', 'envelope_from', 'INTEGER');
      await addColumnIfMissing(conn, 'records', 'envelope_to', 'INTEGER');
      const insert = 'INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)';
      await conn.run(insert, ['schema_version', String(STORE_SCHEMA_VERSION)]);
      created = (await conn.run(insert, ['epoch', randomUUID()])).changes === 1;
      await conn.run(insert, ['created_at', new Date(now).toISOString()]);
      await conn.run("INSERT OR IGNORE INTO meta (key, value) VALUES ('previous_epoch', NULL)");
      for (const key of META_V2_KEYS) await conn.run('INSERT OR IGNORE INTO meta (key, value) VALUES (?, NULL)', [key]);
      if (predecessor !== null) {
        // This open follows a quarantine, so the file at `path` began after it. Only a file that
        // does not yet know its predecessor is filled: a non-owner may have created the fresh file
        // between the quarantine and this open (with the keys NULL), but never filled them.
        const marked = await conn.get<{ value: string | null }>("SELECT value FROM meta WHERE key = 'replaced_epoch_at'");
        if (marked?.value === null || marked === undefined) {
          await conn.run("UPDATE meta SET value = ? WHERE key = 'previous_epoch' AND value IS NULL", [predecessor.epoch]);
          await conn.run("UPDATE meta SET value = ? WHERE key = 'previous_streams'", [
            predecessor.streams === null ? null : JSON.stringify(predecessor.streams),
          ]);
          await conn.run("UPDATE meta SET value = ? WHERE key = 'replaced_epoch_at'", [String(now)]);
        }
      }
      await conn.exec('COMMIT');
    } catch (error) {
      await conn.exec('ROLLBACK').catch(() => undefined);
      throw error;
    }

    const rows = await conn.all<{ key: string; value: string | null }>("SELECT key, value FROM meta WHERE key IN ('epoch', 'previous_epoch')");
    const epoch = rows.find((r) => r.key === 'epoch')?.value;
    if (!epoch) throw new Error(`stream store ${path} has no epoch after creation`);
    const previous = rows.find((r) => r.key === 'previous_epoch')?.value ?? null;
    const autoVacuum = (await conn.get<{ auto_vacuum: number }>('PRAGMA auto_vacuum'))?.auto_vacuum === 2;
    if (migrated) logger.info('stream store migrated', { path, from: 1, to: STORE_SCHEMA_VERSION, dropRanges: migrated.ranges });
    // An epoch that replaces a quarantined file marks a loss window, so it is a warning.
    const afterQuarantine = predecessor !== null;
    if (created) logger.log(afterQuarantine ? 'warn' : 'info', 'new epoch', { path, epoch, previousEpoch: previous, afterQuarantine });
    return { conn, epoch, previousEpoch: previous, autoVacuum };
  } catch (error) {
    await conn.close().catch(() => undefined);
    if (isCorruptionError(error)) throw new CorruptionFound(errorMessage(error), null);
    throw error;
  }
}

/** quick_check and schema version on a read-only connection; throws CorruptionFound or StoreSchemaError. */
async function inspect(path: string, busyTimeoutMs: number): Promise<void> {
  const conn = await Connection.open(path, true);
  let failure: unknown = null;
  try {
    conn.configureBusyTimeout(busyTimeoutMs);
    let rows: Array<{ quick_check: string }> = [];
    try {
      rows = await conn.all<{ quick_check: string }>('PRAGMA quick_check');
    } catch (error) {
      if (!isCorruptionError(error)) throw error;
      failure = new CorruptionFound(errorMessage(error), await readWhatRemains(conn));
    }
    if (failure === null && (rows.length !== 1 || rows[0]?.quick_check !== 'ok')) {
      failure = new CorruptionFound(`quick_check: ${rows.slice(0, 5).map((r) => r.quick_check).join('; ')}`, await readWhatRemains(conn));
    }
    if (failure === null) {
      const found = await readSchemaVersion(conn);
      if (!isOpenableVersion(found)) failure = new StoreSchemaError(path, found!, STORE_SCHEMA_VERSION);
    }
  } catch (error) {
    failure = isCorruptionError(error) ? new CorruptionFound(errorMessage(error), null) : error;
  } finally {
    await conn.close().catch(() => undefined);
  }
  if (failure !== null) throw failure;
}

/**
 * Best effort: what a corrupt file can still tell about itself, for the epoch report. The epoch
 * (meta) and the per-stream figures (streams) live in separate small tables near the start of the
 * file, so either may survive damage to the records pages; each is read on its own.
 */
async function readWhatRemains(conn: Connection): Promise<Remains> {
  let epoch: string | null = null;
  let streams: EpochStreamInfo[] | null = null;
  try {
    const value = (await conn.get<{ value: unknown }>("SELECT value FROM meta WHERE key = 'epoch'"))?.value;
    epoch = typeof value === 'string' && value.length > 0 ? value : null;
  } catch {
    // Unreadable meta: the epoch stays unknown.
  }
  try {
    const rows = await conn.all<{ stream: unknown; next_seq: unknown; watermark: unknown }>('SELECT stream, next_seq, watermark FROM streams ORDER BY stream');
    streams = checkEpochStreams(
      rows.map((s) => ({ stream: s.stream, appended: typeof s.next_seq === 'number' ? s.next_seq - 1 : null, watermark: s.watermark })),
    );
  } catch {
    // Unreadable streams table: reported as unknown (null), never as an empty list.
  }
  return { epoch, streams };
}

/** A fresh read-only look at a corrupt file, ignoring quick_check; nothing but nulls if even that fails. */
async function salvage(path: string, busyTimeoutMs: number): Promise<Remains> {
  let conn: Connection | null = null;
  try {
    conn = await Connection.open(path, true);
    conn.configureBusyTimeout(busyTimeoutMs);
    return await readWhatRemains(conn);
  } catch {
    return { epoch: null, streams: null };
  } finally {
    await conn?.close().catch(() => undefined);
  }
}

/**
 * Moves the corrupt file and its -wal/-shm aside (never deletes) and returns what it could still
 * tell: its epoch and per-stream figures, read again on a fresh read-only connection if the check
 * that found the corruption could not read them.
 */
async function quarantine(path: string, found: CorruptionFound, logger: Logger, busyTimeoutMs: number): Promise<Remains> {
  let remains: Remains = found.remains ?? { epoch: null, streams: null };
  if (remains.epoch === null || remains.streams === null) {
    const again = await salvage(path, busyTimeoutMs);
    remains = { epoch: remains.epoch ?? again.epoch, streams: remains.streams ?? again.streams };
  }
  const stamp = new Date().toISOString().replace(/:/g, '');
  let target = `${path}.corrupt-${stamp}`;
  for (let n = 1; existsSync(target); n += 1) target = `${path}.corrupt-${stamp}-${n}`;
  for (const suffix of ['', '-wal', '-shm']) {
    if (existsSync(path + suffix)) renameSync(path + suffix, target + suffix);
  }
  logger.error('stream store corrupt, quarantined; records not yet acked in the old epoch are lost', {
    path,
    quarantinePath: target,
    reason: found.reason,
    oldEpoch: remains.epoch,
    oldStreams: remains.streams,
  });
  return remains;
}
