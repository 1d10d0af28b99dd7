/** Sum for wasm: over leading axes a column sum (batch-norm statistics, bias gradients); see reduce-leading.ts. */
import { makeReduction } from './reduce-leading.ts';

/** Wraps the original Sum kernel, which still takes every other reduction. */
export const sumOverLeadingAxes = makeReduction('sum');
