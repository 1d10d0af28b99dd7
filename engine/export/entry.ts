/**
 * What the export-format registry (registry.ts) knows about one format. Each writer file exports its entry; adding
 * a format is a new writer file plus one line in registry.ts (and its verifier in app/export/verify.ts, which
 * TypeScript asks for: the real consumers such as ONNX Runtime and gcc belong to the app, not the engine).
 */
import type { Architecture } from '../models.ts';
import type { ExportGraph } from './graph.ts';
import type { ExportFile } from './files.ts';

/** What every writer is given besides the graph. */
export interface FormatWriteOptions {
  /** Where the net came from (the report's `source`); formats with a metadata slot record it. */
  readonly source: Readonly<Record<string, unknown>>;
  /** Ternary encoding of formats that pack weights themselves (packed). */
  readonly ternaryEncoding: '2bit' | 'base3';
}

/** Format-specific findings for the report's `formats.<name>.details` (ONNX: opset and nodes; C: memory budget). */
export type FormatDetails = Readonly<Record<string, unknown>>;

/** What a writer produced: files in memory (the app stages them on disk) and what the report says about them. */
export interface WrittenFormat {
  readonly files: readonly ExportFile[];
  readonly details: FormatDetails;
  /**
   * The size that matters on the target when it is not the files' size, and what it is (C: the flash budget; its
   * sources are text). The compression ratio is computed on it.
   */
  readonly deployed?: { readonly bytes: number; readonly basis: string };
}

export interface ExportFormatEntry<Name extends string = string> {
  /** The name in `--format`, the API, the report and the artifact kind (`export-<name>`); also its folder's name. */
  readonly name: Name;
  /** Short name for the Export page. */
  readonly title: string;
  /** One sentence: what it is and who reads it. */
  readonly description: string;
  /** The format's own version, written into its files and the report. */
  readonly version: number;
  /** The files it writes into its folder (docs/export-formats.md describes each). */
  readonly files: readonly string[];
  /** The nets it takes; an export of any other is refused before anything is written. */
  readonly architectures: readonly Architecture[];
  /** Who checks the written files: app/export/verify.ts runs this consumer (its map is keyed by the names here). */
  readonly verifier: string;
  readonly write: (graph: ExportGraph, options: FormatWriteOptions) => WrittenFormat;
}

/** The architectures format version 1 describes: sequential nets (ResNet-18's residual blocks are not). */
export const SEQUENTIAL_ARCHITECTURES: readonly Architecture[] = ['mnist', 'cifar10-vgg'];
