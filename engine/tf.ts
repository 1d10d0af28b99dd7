/**
 * The single place the engine loads TensorFlow.js from.
 *
 * The union package is loaded (not tfjs-core alone) because only it registers the gradients that training needs.
 */
import * as tf from '@tensorflow/tfjs';

export { tf };
export type Tensor = tf.Tensor;
