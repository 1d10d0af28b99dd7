/** Cast for the workers' wasm backends: a cast to the dtype the input has shares its data (see alias.ts). */
import type { tf } from '../../tf.ts';
import { aliased } from './alias.ts';

/** Wraps the original Cast, which keeps every real conversion and the string tensors. */
export function aliasingCast(original: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const x = args.inputs['x'] as tf.TensorInfo;
    return x.dtype !== 'string' && x.dtype === (args.attrs as { dtype?: string }).dtype ? aliased(args) : original(args);
  };
}
