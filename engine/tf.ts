/**
 * The single place the engine loads TensorFlow.js from.
 *
 * The union package is loaded (not tfjs-core alone) because only it registers the gradients that training needs.
 */
import * as tf from '@tensorflow/tfjs';

// Production mode skips per-op NaN/shape debugging checks and the console advice to install tfjs-node; the
// training loop checks the loss for non-finite values itself.
tf.enableProdMode();

export { tf };
export type Tensor = tf.Tensor;
