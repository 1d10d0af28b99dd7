/**
 * Adam (Kingma & Ba) with default betas, written out so that its state is plain named tensors: checkpoints save
 * and restore it exactly, and the learning rate can follow the staircase schedule step by step.
 */
import { tf, type Tensor } from './tf.ts';

export interface AdamState {
  /** Number of updates applied so far. */
  step: number;
  /** First and second moment estimates by parameter name (replaced wholesale when a checkpoint is restored). */
  firstMoments: Map<string, tf.Variable>;
  secondMoments: Map<string, tf.Variable>;
}

export class Adam {
  readonly beta1 = 0.9;
  readonly beta2 = 0.999;
  readonly epsilon = 1e-8;
  readonly state: AdamState = { step: 0, firstMoments: new Map(), secondMoments: new Map() };

  /** Applies one update with the given learning rate to every parameter that has a gradient. */
  apply(params: ReadonlyMap<string, tf.Variable>, grads: Readonly<Record<string, Tensor>>, learningRate: number): void {
    this.state.step++;
    const t = this.state.step;
    // Bias corrections folded into the step size, as in the paper's Algorithm 1 (efficient form).
    const stepSize = (learningRate * Math.sqrt(1 - this.beta2 ** t)) / (1 - this.beta1 ** t);
    for (const [name, grad] of Object.entries(grads)) {
      const param = params.get(name);
      if (!param) throw new Error(`Adam: gradient for unknown parameter "${name}"`);
      const m = this.moment(this.state.firstMoments, name, param);
      const v = this.moment(this.state.secondMoments, name, param);
      tf.tidy(() => {
        const newM = tf.add(tf.mul(this.beta1, m), tf.mul(1 - this.beta1, grad));
        const newV = tf.add(tf.mul(this.beta2, v), tf.mul(1 - this.beta2, tf.square(grad)));
        m.assign(newM);
        v.assign(newV);
        param.assign(tf.sub(param, tf.div(tf.mul(stepSize, newM), tf.add(tf.sqrt(newV), this.epsilon))));
      });
    }
  }

  private moment(store: Map<string, tf.Variable>, name: string, like: Tensor): tf.Variable {
    let value = store.get(name);
    if (!value) {
      value = tf.tidy(() => tf.variable(tf.zerosLike(like), false));
      store.set(name, value);
    }
    return value;
  }

  dispose(): void {
    for (const v of [...this.state.firstMoments.values(), ...this.state.secondMoments.values()]) v.dispose();
    this.state.firstMoments.clear();
    this.state.secondMoments.clear();
  }
}

/** Staircase decay: base * factor^floor(epoch / every), with epochs counted from 0. */
export function staircaseLearningRate(base: number, factor: number, every: number, epochIndex: number): number {
  return every > 0 ? base * factor ** Math.floor(epochIndex / every) : base;
}
