import { Writable } from 'node:stream';
import winston from 'winston';

export interface LogEntry {
  level: string;
  message: string;
  [key: string]: unknown;
}

/** A real winston logger whose entries a test can read back. */
export function captureLogger(): { logger: winston.Logger; entries: LogEntry[] } {
  const entries: LogEntry[] = [];
  const sink = new Writable({
    objectMode: true,
    write(chunk: LogEntry, _encoding, done) {
      entries.push(chunk);
      done();
    },
  });
  return { logger: winston.createLogger({ level: 'debug', transports: [new winston.transports.Stream({ stream: sink })] }), entries };
}
