/**
 * What the dataset registry (registry.ts) knows about one data set. Each reader file exports its entries; adding a
 * data set is a new reader file plus one line in registry.ts.
 */
import type { Architecture } from '../models.ts';
import type { Dataset } from './types.ts';
import type { TrainingData } from './source.ts';

/** One file as its publisher distributes it. */
export interface PublishedFile {
  /** File name on the server and on disk. */
  readonly name: string;
  /** Published md5 (hex) of the file as distributed. */
  readonly md5: string;
  /** Published md5 of the gunzipped content, where there is one (MNIST). */
  readonly inflatedMd5?: string;
  /** Size in bytes as distributed, used for progress when a server sends no length. */
  readonly bytes: number;
}

/** Where a data set's official files live and the checksums their publishers give (`lrnet data download NAME`). */
export interface DownloadManifest {
  readonly title: string;
  readonly homepage: string;
  /** Base URLs tried in order; a file's URL is the base followed by the file name. */
  readonly mirrors: readonly string[];
  readonly files: readonly PublishedFile[];
}

/** Settings of a run's data that the readers take (the run's DatasetConfig without its name). */
export interface DatasetReadOptions {
  /** Folder or archive holding the data set's files; unused by a bundled data set. */
  readonly path?: string;
  /** Use only the first N training images (before the validation split; an image folder: a fixed random subset). */
  readonly trainLimit?: number;
  /** Use only the first N test images in evaluations (an image folder: a fixed random subset of val/). */
  readonly testLimit?: number;
  /** Image folders only: side of the square crop the network sees (default 224). */
  readonly cropSize?: number;
  /** Image folders only: the shorter side is resized to this before cropping (default 256, at least cropSize). */
  readonly resizeShorter?: number;
  /** Image folders only: threads that read and decode images (default: every core but one, at most 8). */
  readonly decodeWorkers?: number;
}

/** Reader settings that only some data sets take (listed in their entry's `options`). */
export type DatasetSpecificOption = 'cropSize' | 'resizeShorter' | 'decodeWorkers';

export interface DatasetEntry<Name extends string = string> {
  readonly name: Name;
  /** Short name for lists and menus. */
  readonly title: string;
  /** One sentence: what it is and where its files come from. */
  readonly description: string;
  /**
   * The architectures of the paper's recipes for this data set (what the New-run form suggests); the models adapt
   * to any input shape, so others train too (tests run the MNIST net on small image-folder crops).
   */
  readonly architectures: readonly Architecture[];
  /** 'bundled': shipped with lrnet, needs no path; 'path': the run names a folder (or archive) of its files. */
  readonly location: 'bundled' | 'path';
  /** What the path must hold, for messages and the New-run form (path data sets only). */
  readonly pathHint?: string;
  /** Settings besides path and limits that this data set takes; giving any other is a configuration error. */
  readonly options?: readonly DatasetSpecificOption[];
  /** Loads it into memory; absent for data streamed from disk (image folders). */
  readonly load?: (options: DatasetReadOptions) => Dataset;
  /** Opens it for training and evaluation; absent when `load` is given (the registry wraps the loaded set). */
  readonly open?: (options: DatasetReadOptions) => Promise<TrainingData>;
  /** The official files, for data sets lrnet can download. */
  readonly download?: DownloadManifest;
}

/** The path a path data set needs; a TypeError saying what it must hold when there is none. */
export function requiredPath(options: DatasetReadOptions, name: string, pathHint: string): string {
  if (typeof options.path !== 'string' || options.path === '') {
    throw new TypeError(`dataset "${name}" needs a path ("dir" or "path"): ${pathHint}`);
  }
  return options.path;
}
