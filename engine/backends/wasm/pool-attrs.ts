/** The attributes MaxPoolGrad and AvgPoolGrad share. */
import { tf } from '../../tf.ts';

export interface PoolGradAttrs {
  filterSize: number | [number, number];
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}
