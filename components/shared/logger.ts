import winston from 'winston';

/**
 * Structured JSON logs on stdout, one object per line. The Greengrass nucleus captures a
 * component's stdout/stderr into its log file, so stdout is the only sink a component needs.
 */
export type Logger = winston.Logger;

export function createLogger(component: string, fields: Record<string, unknown> = {}): Logger {
  return winston.createLogger({
    level: process.env.LOG_LEVEL ?? 'info',
    defaultMeta: { component, ...fields },
    format: winston.format.combine(winston.format.timestamp(), winston.format.errors({ stack: true }), winston.format.json()),
    transports: [new winston.transports.Console({ stderrLevels: ['error'] })],
  });
}

/** Renders any thrown value as a short string for a log field. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (typeof error === 'object' && error !== null) return JSON.stringify(error);
  return String(error);
}
