import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';

const ajv = new Ajv({ strict: true, allErrors: true, useDefaults: true });
addFormats(ajv);

export type Validator<T> = (value: unknown) => { ok: true; value: T } | { ok: false; reason: string };

/** Compiles a JSON Schema once; the returned function names every violation with its JSON pointer. */
export function compileValidator<T>(schema: object): Validator<T> {
  const validate: ValidateFunction = compiledBefore(schema) ?? ajv.compile(schema);
  return (value: unknown) => {
    if (validate(value)) return { ok: true, value: value as T };
    return { ok: false, reason: describeErrors(validate.errors) };
  };
}

/**
 * ajv keeps every schema with an $id and refuses a second compile of the same id; the same schema
 * compiled twice (two modules, a test) reuses the first. A different schema under a taken id still
 * fails, as it should.
 */
function compiledBefore(schema: object): ValidateFunction | undefined {
  const id = (schema as { $id?: unknown }).$id;
  if (typeof id !== 'string') return undefined;
  const existing = ajv.getSchema(id);
  return existing && JSON.stringify(existing.schema) === JSON.stringify(schema) ? existing : undefined;
}

/** The part of an ajv error that names the culprit: the unknown key, the allowed values. */
function detail(error: ErrorObject): string {
  const params = error.params as Record<string, unknown>;
  if (typeof params.additionalProperty === 'string') return `: "${params.additionalProperty}"`;
  if (params.allowedValues !== undefined) return ` (${JSON.stringify(params.allowedValues)})`;
  if (params.allowedValue !== undefined) return ` (${JSON.stringify(params.allowedValue)})`;
  return '';
}

export function describeErrors(errors: ErrorObject[] | null | undefined): string {
  if (!errors || errors.length === 0) return 'invalid';
  return errors
    .map((e) => `${e.instancePath || '/'} ${e.message ?? 'is invalid'}${detail(e)}`)
    .join('; ');
}
