/** Mean for wasm: over leading axes a column sum, scaled; see reduce-leading.ts. */
import { makeReduction } from './reduce-leading.ts';

/** Wraps the original Mean kernel, which still takes every other reduction. */
export const meanOverLeadingAxes = makeReduction('mean');
