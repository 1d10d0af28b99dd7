/**
 * Runs an export graph with TensorFlow.js ops, folded batch norm included. This is how a graph read back from a
 * packed file (`unpack`) is checked against the app's own discrete net: it uses only what the file stores.
 */
import { tf, type Tensor } from '../tf.ts';
import { type ExportGraph, isLinear } from './graph.ts';

/** Logits of a batch [n, h, w, c] of normalized inputs. */
export function graphLogits(graph: ExportGraph, x: Tensor): Tensor {
  return tf.tidy(() => {
    let h = x;
    for (const op of graph.ops) {
      if (isLinear(op)) {
        const w = tf.tensor(Float32Array.from(op.weights), [...op.shape]);
        h = op.op === 'conv'
          ? tf.conv2d(h as tf.Tensor4D, w as tf.Tensor4D, op.stride, 'same')
          : tf.matMul(h as tf.Tensor2D, w as tf.Tensor2D);
        if (op.scale && op.shift) h = tf.add(tf.mul(h, op.scale), op.shift);
        if (op.bias) h = tf.add(h, op.bias);
        continue;
      }
      switch (op.op) {
        case 'relu':
          h = tf.relu(h);
          break;
        case 'maxpool':
          h = tf.maxPool(h as tf.Tensor4D, op.size, op.stride, 'same');
          break;
        case 'flatten':
          h = tf.reshape(h, [h.shape[0]!, -1]);
          break;
        case 'globalavgpool':
          h = tf.mean(h, [1, 2]);
          break;
        case 'scaleshift':
          h = tf.add(tf.mul(h, op.scale), op.shift);
          break;
      }
    }
    return h;
  });
}
