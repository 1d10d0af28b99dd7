/**
 * The one error type the dataset readers throw for anything wrong with the data on disk (a missing file, a corrupt
 * or truncated file, inconsistent contents). Callers can show `message` to a user as is: it names the file, says
 * what is wrong with it and what to do about it.
 */
export class DatasetError extends Error {
  /** The file or folder the problem is about (as given by the caller, or the path inside an archive). */
  readonly file: string;
  /** What is wrong, without the file name and the advice. */
  readonly problem: string;
  /** What the user can do about it. */
  readonly remedy: string;

  constructor(file: string, problem: string, remedy: string = DEFAULT_REMEDY, options?: { cause?: unknown }) {
    super(`${file}: ${problem}. ${remedy}`, options);
    this.name = 'DatasetError';
    this.file = file;
    this.problem = problem;
    this.remedy = remedy;
  }
}

export const DEFAULT_REMEDY = 'The file is damaged or not in the expected format: download it again from the official source';

/** Type guard usable across module copies (vitest may load a module twice). */
export function isDatasetError(err: unknown): err is DatasetError {
  return err instanceof DatasetError || (err instanceof Error && err.name === 'DatasetError' && 'file' in err);
}
