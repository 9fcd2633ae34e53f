import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import sqlite3 from 'sqlite3';
import { Backoff, sleep } from './backoff';
import { errorMessage, type Logger } from './logger';

/**
 * The stream store: one SQLite file in WAL mode, shared by three processes. SensorAcquisition
 * appends, StreamBuffer (the owner) enforces retention and checkpoints, MqttPublisher reads,
 * marks and applies acks. Every write is one BEGIN IMMEDIATE transaction, so writers from
 * different processes queue on SQLite's write lock (busy_timeout) instead of failing halfway.
 */

export const STORE_SCHEMA_VERSION = 1;

/**
 * Long enough to outlast any single write transaction in this module (the longest is one
 * eviction chunk or a TRUNCATE checkpoint of a busy WAL), short enough that a stuck writer
 * surfaces as an error instead of a silent stall.
 */
export const DEFAULT_BUSY_TIMEOUT_MS = 10_000;

/** Rows evicted per retention transaction, so a large cut never holds the write lock for long. */
const EVICTION_CHUNK = 2_000;

export class StoreSchemaError extends Error {
  override readonly name = 'StoreSchemaError';
  constructor(
    readonly path: string,
    readonly found: string,
    readonly expected: number,
  ) {
    super(`stream store ${path} has schema version ${found}, this build expects version ${expected}`);
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

export interface AppendInput {
  stream: string;
  priority: number;
  /** Wall-clock ms. */
  time: number;
  /** Monotonic ms. */
  mono: number;
  data: Record<string, unknown>;
}

export interface PendingRecord {
  stream: string;
  seq: number;
  time: number;
  mono: number;
  priority: number;
  data: Record<string, unknown>;
  bytes: number;
  sentAt: number | null;
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
}

export interface OpenOptions {
  owner: boolean;
  logger: Logger;
  busyTimeoutMs?: number;
}

export interface StreamDrop {
  count: number;
  bytes: number;
  firstSeq: number;
  lastSeq: number;
}

export interface RetentionResult {
  dropped: number;
  droppedBytes: number;
  /** What was evicted in this call, per stream. */
  byStream: Record<string, StreamDrop>;
}

export interface AckResult {
  applied: boolean;
  deleted: number;
  resend: number;
}

export const DROP_REASON_BYTE_CAP = 'byte-cap';

// Counters kept in `streams` (backlog_records, backlog_bytes, unsent_records) are updated in
// the same transaction as the rows they count: retention runs every few seconds and stats feed
// health, and summing a million-row table that often is too slow on a small device.
const SCHEMA_SQL = `
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

interface Remains {
  epoch: string | null;
  /** Per stream: highest seq assigned and acked, i.e. the loss window of the old epoch. */
  streams: Array<{ stream: string; appended: number; watermark: number }>;
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
}

interface OpenedFile {
  conn: Connection;
  epoch: string;
  previousEpoch: string | null;
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

export class StreamStore {
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(
    private readonly conn: Connection,
    readonly path: string,
    readonly epoch: string,
    readonly previousEpoch: string | null,
    private readonly logger: Logger,
  ) {}

  /**
   * Opens (creating if absent) the store at `path`. Throws StoreSchemaError if the file carries
   * another schema version (the file is left as it was), StoreCorruptError to a non-owner that
   * finds a corrupt file. An owner that finds a corrupt file quarantines it and starts a new epoch.
   */
  static async open(path: string, options: OpenOptions): Promise<StreamStore> {
    const busyTimeoutMs = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
    assertInteger(busyTimeoutMs, 'busyTimeoutMs', 0);
    const logger = options.logger;
    mkdirSync(dirname(path), { recursive: true });

    let previousEpoch: string | null = null;
    // A quarantine is followed by one fresh open; a second corrupt result would mean the new
    // file is corrupt too, which is a disk problem a retry loop cannot fix.
    for (let attempt = 0; attempt < 2; attempt += 1) {
      try {
        const opened = await retryWhileBusy(() => openFile(path, busyTimeoutMs, logger, previousEpoch, attempt > 0), busyTimeoutMs);
        return new StreamStore(opened.conn, path, opened.epoch, opened.previousEpoch, logger);
      } catch (error) {
        if (!(error instanceof CorruptionFound)) throw error;
        if (!options.owner || attempt > 0) throw new StoreCorruptError(path, error.reason);
        previousEpoch = quarantine(path, error, logger);
      }
    }
    throw new StoreCorruptError(path, 'still corrupt after quarantine');
  }

  /** Appends records in ONE transaction; each gets the next seq of its stream, starting at 1. */
  async append(records: AppendInput[]): Promise<Array<{ stream: string; seq: number }>> {
    const prepared = records.map((record, index) => {
      const where = `records[${index}]`;
      assertName(record.stream, `${where}.stream`);
      assertInteger(record.priority, `${where}.priority`, 0);
      assertFinite(record.time, `${where}.time`);
      assertFinite(record.mono, `${where}.mono`);
      if (typeof record.data !== 'object' || record.data === null || Array.isArray(record.data)) {
        throw new TypeError(`${where}.data must be a JSON object`);
      }
      const data = JSON.stringify(record.data);
      return { ...record, json: data, bytes: Buffer.byteLength(data) };
    });
    if (prepared.length === 0) return [];

    return this.write(async (conn) => {
      const next = new Map<string, number>();
      const added = new Map<string, { records: number; bytes: number }>();
      for (const stream of new Set(prepared.map((r) => r.stream))) {
        await conn.run('INSERT OR IGNORE INTO streams (stream, next_seq) VALUES (?, 1)', [stream]);
        const row = await conn.get<{ next_seq: number }>('SELECT next_seq FROM streams WHERE stream = ?', [stream]);
        next.set(stream, row!.next_seq);
        added.set(stream, { records: 0, bytes: 0 });
      }
      const assigned: Array<{ stream: string; seq: number }> = [];
      for (const record of prepared) {
        const seq = next.get(record.stream)!;
        next.set(record.stream, seq + 1);
        await conn.run('INSERT INTO records (stream, seq, time, mono, priority, data, bytes, sent_at) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)', [
          record.stream,
          seq,
          record.time,
          record.mono,
          record.priority,
          record.json,
          record.bytes,
        ]);
        const sum = added.get(record.stream)!;
        sum.records += 1;
        sum.bytes += record.bytes;
        assigned.push({ stream: record.stream, seq });
      }
      for (const [stream, sum] of added) {
        await conn.run(
          `UPDATE streams SET next_seq = ?, backlog_records = backlog_records + ?, backlog_bytes = backlog_bytes + ?,
             unsent_records = unsent_records + ? WHERE stream = ?`,
          [next.get(stream), sum.records, sum.bytes, sum.records, stream],
        );
      }
      return assigned;
    });
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
        `SELECT stream, seq, time, mono, priority, data, bytes, sent_at FROM records
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
      data: JSON.parse(r.data) as Record<string, unknown>,
      bytes: r.bytes,
      sentAt: r.sent_at,
    }));
  }

  /** Stamps records seqFrom..seqTo (inclusive) of `stream` as sent at `at`. */
  async markSent(stream: string, seqFrom: number, seqTo: number, at: number): Promise<void> {
    assertName(stream, 'stream');
    assertInteger(seqFrom, 'seqFrom', 1);
    assertInteger(seqTo, 'seqTo', seqFrom);
    assertFinite(at, 'at');
    await this.write(async (conn) => {
      const first = await conn.run('UPDATE records SET sent_at = ? WHERE stream = ? AND seq BETWEEN ? AND ? AND sent_at IS NULL', [
        at,
        stream,
        seqFrom,
        seqTo,
      ]);
      // A resend re-stamps records already sent; only the first send changes the unsent count.
      await conn.run('UPDATE records SET sent_at = ? WHERE stream = ? AND seq BETWEEN ? AND ? AND sent_at IS NOT NULL', [at, stream, seqFrom, seqTo]);
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
   * Applies the cloud's ack for one stream (docs/CONTRACTS.md "Ack"): deletes seq <= watermark,
   * marks records inside the gaps unsent. An ack for another epoch is ignored. The watermark
   * never moves backwards (a QoS 1 redelivery of an older ack is normal) and never beyond the
   * highest seq assigned (that would be a cloud bug; clamped and logged).
   */
  async applyAck(stream: string, epoch: string, watermark: number, gaps: Array<[number, number]>): Promise<AckResult> {
    assertName(stream, 'stream');
    assertInteger(watermark, 'watermark', 0);
    for (const [i, gap] of gaps.entries()) {
      if (!Array.isArray(gap) || gap.length !== 2) throw new TypeError(`gaps[${i}] must be a [from, to] pair`);
      assertInteger(gap[0], `gaps[${i}][0]`, 1);
      assertInteger(gap[1], `gaps[${i}][1]`, gap[0]);
    }
    if (epoch !== this.epoch) {
      this.logger.info('ack for another epoch ignored', { stream, ackEpoch: epoch, epoch: this.epoch, watermark });
      return { applied: false, deleted: 0, resend: 0 };
    }
    return this.write(async (conn) => {
      const row = await conn.get<StreamRow>('SELECT * FROM streams WHERE stream = ?', [stream]);
      const highest = row ? row.next_seq - 1 : 0;
      let target = watermark;
      if (target > highest) {
        this.logger.warn('ack watermark beyond highest assigned seq, clamped', { stream, epoch, watermark, highest });
        target = highest;
      }
      if (!row) return { applied: true, deleted: 0, resend: 0 };
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
      }

      let resend = 0;
      for (const [from, to] of gaps) {
        const lo = Math.max(from, effective + 1);
        if (lo > to) continue;
        const changed = await conn.run('UPDATE records SET sent_at = NULL WHERE stream = ? AND seq BETWEEN ? AND ? AND sent_at IS NOT NULL', [
          stream,
          lo,
          to,
        ]);
        resend += changed.changes;
      }
      if (resend > 0) {
        await conn.run('UPDATE streams SET unsent_records = unsent_records + ? WHERE stream = ?', [resend, stream]);
      }
      return { applied: true, deleted, resend };
    });
  }

  /**
   * While the backlog's data bytes exceed maxBytes, evicts lowest priority first, then oldest
   * (insertion order), and counts every evicted record in `drops` under reason 'byte-cap'.
   * The cap is on record data bytes, not file size: a SQLite file does not shrink when rows are
   * deleted, so a file-size cap would keep evicting after space had already been freed inside it.
   */
  async enforceRetention(limits: { maxBytes: number }): Promise<RetentionResult> {
    assertInteger(limits.maxBytes, 'maxBytes', 0);
    const result: RetentionResult = { dropped: 0, droppedBytes: 0, byStream: {} };
    for (;;) {
      const chunk = await this.write(async (conn) => {
        const total = await conn.get<{ bytes: number | null }>('SELECT SUM(backlog_bytes) AS bytes FROM streams');
        const excess = (total?.bytes ?? 0) - limits.maxBytes;
        if (excess <= 0) return null;
        const candidates = await conn.all<{ priority: number; id: number; bytes: number }>(
          'SELECT priority, id, bytes FROM records ORDER BY priority, id LIMIT ?',
          [EVICTION_CHUNK],
        );
        if (candidates.length === 0) {
          // The counters say there is a backlog but no row exists: they have drifted. Resync them
          // rather than loop forever.
          this.logger.error('backlog counters disagree with records, recounting', { path: this.path, counted: total?.bytes });
          await recount(conn);
          return { done: false, rows: [] as DropRow[] };
        }
        let freed = 0;
        let cut = candidates[candidates.length - 1]!;
        for (const candidate of candidates) {
          freed += candidate.bytes;
          cut = candidate;
          if (freed >= excess) break;
        }
        // Everything up to (priority, id) of the cut row, in eviction order.
        const where = 'priority < ? OR (priority = ? AND id <= ?)';
        const params = [cut.priority, cut.priority, cut.id];
        const rows = await conn.all<DropRow>(
          `SELECT stream, COUNT(*) AS count, SUM(bytes) AS bytes, SUM(sent_at IS NULL) AS unsent, MIN(seq) AS first_seq, MAX(seq) AS last_seq
             FROM records WHERE ${where} GROUP BY stream`,
          params,
        );
        await conn.run(`DELETE FROM records WHERE ${where}`, params);
        for (const row of rows) {
          await conn.run(
            `UPDATE streams SET backlog_records = backlog_records - ?, backlog_bytes = backlog_bytes - ?,
               unsent_records = unsent_records - ? WHERE stream = ?`,
            [row.count, row.bytes, row.unsent, row.stream],
          );
          await conn.run(
            `INSERT INTO drops (stream, reason, count, bytes, first_seq, last_seq) VALUES (?, ?, ?, ?, ?, ?)
               ON CONFLICT (stream, reason) DO UPDATE SET count = count + excluded.count, bytes = bytes + excluded.bytes,
                 first_seq = MIN(first_seq, excluded.first_seq), last_seq = MAX(last_seq, excluded.last_seq)`,
            [row.stream, DROP_REASON_BYTE_CAP, row.count, row.bytes, row.first_seq, row.last_seq],
          );
        }
        return { done: freed >= excess, rows };
      });
      if (chunk === null) break;
      for (const row of chunk.rows) {
        result.dropped += row.count;
        result.droppedBytes += row.bytes;
        const seen = result.byStream[row.stream];
        if (seen) {
          seen.count += row.count;
          seen.bytes += row.bytes;
          seen.firstSeq = Math.min(seen.firstSeq, row.first_seq);
          seen.lastSeq = Math.max(seen.lastSeq, row.last_seq);
        } else {
          result.byStream[row.stream] = { count: row.count, bytes: row.bytes, firstSeq: row.first_seq, lastSeq: row.last_seq };
        }
      }
      // A writer may append between chunks; the next iteration re-reads the total and stops
      // once it is under the cap.
    }
    return result;
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
    return {
      epoch: this.epoch,
      previousEpoch: this.previousEpoch,
      streams,
      backlogRecords: streams.reduce((n, s) => n + s.backlogRecords, 0),
      backlogBytes: streams.reduce((n, s) => n + s.backlogBytes, 0),
      fileBytes: fileSize(this.path) + fileSize(`${this.path}-wal`),
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

interface DropRow {
  stream: string;
  count: number;
  bytes: number;
  unsent: number;
  first_seq: number;
  last_seq: number;
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

async function openFile(path: string, busyTimeoutMs: number, logger: Logger, previousEpoch: string | null, afterQuarantine = false): Promise<OpenedFile> {
  // An existing file is checked on a read-only connection first: closing a read-write connection
  // checkpoints the WAL into the main file, which would alter a corrupt or foreign file before
  // it is quarantined or reported.
  if (fileSize(path) > 0) await inspect(path, busyTimeoutMs);

  const conn = await Connection.open(path, false);
  try {
    conn.configureBusyTimeout(busyTimeoutMs);
    const mode = await conn.get<{ journal_mode: string }>('PRAGMA journal_mode = WAL');
    if (mode?.journal_mode !== 'wal') throw new Error(`stream store ${path} could not switch to WAL (journal_mode is ${mode?.journal_mode})`);
    // In WAL mode synchronous=NORMAL may lose the last commits on power loss; FULL syncs the WAL
    // on every commit, so an append that returned is on disk (sqlite.org/pragma.html#pragma_synchronous).
    await conn.exec('PRAGMA synchronous = FULL');

    await conn.exec('BEGIN IMMEDIATE');
    let created = false;
    try {
      // Re-read inside the write lock: another process may have created the file since inspect().
      const found = await readSchemaVersion(conn);
      if (found !== null && found !== String(STORE_SCHEMA_VERSION)) throw new StoreSchemaError(path, found, STORE_SCHEMA_VERSION);
      await conn.exec(SCHEMA_SQL);
      const insert = 'INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)';
      await conn.run(insert, ['schema_version', String(STORE_SCHEMA_VERSION)]);
      created = (await conn.run(insert, ['epoch', randomUUID()])).changes === 1;
      await conn.run(insert, ['created_at', new Date().toISOString()]);
      if (previousEpoch !== null) {
        // Only fills a file that does not yet know its predecessor: a non-owner may have created
        // the fresh file between the quarantine and this open.
        await conn.run(
          `INSERT INTO meta (key, value) VALUES ('previous_epoch', ?)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value WHERE meta.value IS NULL`,
          [previousEpoch],
        );
      } else {
        await conn.run("INSERT OR IGNORE INTO meta (key, value) VALUES ('previous_epoch', NULL)");
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
    // An epoch that replaces a quarantined file marks a loss window, so it is a warning.
    if (created) logger.log(afterQuarantine ? 'warn' : 'info', 'new epoch', { path, epoch, previousEpoch: previous, afterQuarantine });
    return { conn, epoch, previousEpoch: previous };
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
      if (found !== null && found !== String(STORE_SCHEMA_VERSION)) failure = new StoreSchemaError(path, found, STORE_SCHEMA_VERSION);
    }
  } catch (error) {
    failure = isCorruptionError(error) ? new CorruptionFound(errorMessage(error), null) : error;
  } finally {
    await conn.close().catch(() => undefined);
  }
  if (failure !== null) throw failure;
}

/** Best effort: what a corrupt file can still tell about itself, for the loss report. */
async function readWhatRemains(conn: Connection): Promise<Remains> {
  let epoch: string | null = null;
  let streams: Remains['streams'] = [];
  try {
    epoch = (await conn.get<{ value: string }>("SELECT value FROM meta WHERE key = 'epoch'"))?.value ?? null;
  } catch {
    return { epoch: null, streams: [] };
  }
  try {
    streams = (await conn.all<StreamRow>('SELECT stream, next_seq, watermark FROM streams')).map((s) => ({
      stream: s.stream,
      appended: s.next_seq - 1,
      watermark: s.watermark,
    }));
  } catch {
    // The epoch alone still links the two epochs.
  }
  return { epoch, streams };
}

/** Moves the corrupt file and its -wal/-shm aside (never deletes) and returns its epoch if it was readable. */
function quarantine(path: string, found: CorruptionFound, logger: Logger): string | null {
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
    oldEpoch: found.remains?.epoch ?? null,
    oldStreams: found.remains?.streams ?? [],
  });
  return found.remains?.epoch ?? null;
}
