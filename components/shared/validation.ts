import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';

const ajv = new Ajv({ strict: true, allErrors: true, useDefaults: true });
addFormats(ajv);

export type Validator<T> = (value: unknown) => { ok: true; value: T } | { ok: false; reason: string };

/** Compiles a JSON Schema once; the returned function names every violation with its JSON pointer. */
export function compileValidator<T>(schema: object): Validator<T> {
  const validate: ValidateFunction = ajv.compile(schema);
  return (value: unknown) => {
    if (validate(value)) return { ok: true, value: value as T };
    return { ok: false, reason: describeErrors(validate.errors) };
  };
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
