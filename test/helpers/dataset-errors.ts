/** Checks for the errors the dataset loaders throw at the user. */
import { expect } from 'vitest';
import { DatasetError } from '../../engine/data/errors.ts';

/** Calls fn and returns the DatasetError it must throw, checking that it names `file` (and matches `pattern`). */
export function expectDatasetError(fn: () => unknown, file: string, pattern?: RegExp): DatasetError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught, 'expected a DatasetError').toBeInstanceOf(DatasetError);
  const err = caught as DatasetError;
  expect(err.file).toBe(file);
  expect(err.message).toContain(file);
  if (pattern) expect(err.message).toMatch(pattern);
  return err;
}
