import sqlite3 from 'sqlite3';

/**
 * Direct SQLite access for tests that must look at or damage a store file behind the store
 * module's back (counters vs recount, version-1 files, corruption).
 */
export function rawExec(path: string, sql: string): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const db = new sqlite3.Database(path, (openError) => {
      if (openError) return reject(openError);
      db.exec(sql, (error: Error | null) => {
        db.close(() => (error ? reject(error) : resolvePromise()));
      });
    });
  });
}

export function rawAll<T>(path: string, sql: string): Promise<T[]> {
  return new Promise((resolvePromise, reject) => {
    const db = new sqlite3.Database(path, sqlite3.OPEN_READONLY, (openError) => {
      if (openError) return reject(openError);
      db.all<T>(sql, (error: Error | null, rows: T[]) => {
        db.close(() => (error ? reject(error) : resolvePromise(rows)));
      });
    });
  });
}
