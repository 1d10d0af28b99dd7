/**
 * Checks of what callers hand the store, before anything is written. Each throws StoreError 'invalid-argument'
 * naming the field (`what`) and what was expected.
 */
import { StoreError } from './errors.ts';

const MAX_TAG_LENGTH = 100;

/** JSON text of a plain object. */
export function objectJson(value: unknown, what: string): string {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new StoreError('invalid-argument', `${what} must be a JSON object, got ${Array.isArray(value) ? 'an array' : String(value)}`);
  }
  return anyJson(value, what);
}

/** JSON text of any serializable value. */
export function anyJson(value: unknown, what: string): string {
  try {
    const text = JSON.stringify(value);
    if (text === undefined) throw new Error('not serializable');
    return text;
  } catch (error) {
    throw new StoreError('invalid-argument', `${what} cannot be stored as JSON: ${(error as Error).message}`);
  }
}

/** JSON text, or null (SQL NULL) for null and undefined. */
export function nullableJson(value: unknown, what: string): string | null {
  return value === null || value === undefined ? null : anyJson(value, what);
}

export function nonEmpty(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.trim().length === 0) {
    throw new StoreError('invalid-argument', `${what} must be a non-empty string, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** The number, or null for null and undefined; NaN is refused. */
export function optionalNumber(value: unknown, what: string): number | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'number' || Number.isNaN(value)) {
    throw new StoreError('invalid-argument', `${what} must be a number or null, got ${String(value)}`);
  }
  return value;
}

export function checkStep(step: unknown, what: string): number {
  if (!Number.isSafeInteger(step) || (step as number) < 0) {
    throw new StoreError('invalid-argument', `${what} step must be an integer >= 0, got ${String(step)}`);
  }
  return step as number;
}

export function checkProgress(progress: unknown): number | null {
  const p = optionalNumber(progress, 'progress');
  if (p !== null && !(p >= 0 && p <= 1)) throw new StoreError('invalid-argument', `progress must be in [0, 1], got ${p}`);
  return p;
}

/** The tag trimmed; tags are compared as stored. */
export function normalizeTag(tag: unknown): string {
  const t = nonEmpty(tag, 'tag').trim();
  if (t.length > MAX_TAG_LENGTH) throw new StoreError('invalid-argument', `tag is longer than ${MAX_TAG_LENGTH} characters`);
  return t;
}
