/** The registry entry of ImageNet-style image folders (see registry.ts); the reading is in source.ts and imagefolder.ts. */
import { openImageFolderData } from './source.ts';
import { requiredPath, type DatasetEntry } from './entry.ts';

const PATH_HINT = 'the folder holding train/<class>/ and val/<class>/';

export const IMAGE_FOLDER_DATASET = {
  name: 'imagefolder',
  title: 'Image folder (ImageNet-style)',
  description: 'JPEG/PNG images sorted into train/<class>/ and val/<class>/ folders, streamed from disk (ResNet-18).',
  architectures: ['resnet18'],
  location: 'path',
  pathHint: PATH_HINT,
  options: ['cropSize', 'resizeShorter', 'decodeWorkers'],
  open: (options) => {
    const { trainLimit, cropSize, resizeShorter, decodeWorkers } = options;
    return openImageFolderData(requiredPath(options, 'imagefolder', PATH_HINT), {
      ...(trainLimit !== undefined ? { trainLimit } : {}),
      ...(cropSize !== undefined ? { cropSize } : {}),
      ...(resizeShorter !== undefined ? { resizeShorter } : {}),
      ...(decodeWorkers !== undefined ? { workers: decodeWorkers } : {}),
    });
  },
} as const satisfies DatasetEntry<'imagefolder'>;

