/** Identity for the workers' wasm backends: shares the input's data (see alias.ts); strings still copy. */
import type { tf } from '../../tf.ts';
import { aliased } from './alias.ts';

/** Wraps the original Identity, which keeps the string tensors. */
export function aliasingIdentity(original: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const x = args.inputs['x'] as tf.TensorInfo;
    return x.dtype === 'string' ? original(args) : aliased(args);
  };
}
