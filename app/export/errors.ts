/** The export's expected errors: a request it refuses, with a message a person can act on. */

export type ExportErrorCode = 'not-finished' | 'exists' | 'unwritable' | 'invalid-argument' | 'unsupported';

/** An expected problem with an export request, with a message a person can act on. Nothing was written. */
export class ExportError extends Error {
  override name = 'ExportError';
  constructor(readonly code: ExportErrorCode, message: string) {
    super(message);
  }
}
