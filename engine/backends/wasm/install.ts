/** Registering a replacement kernel on the wasm backend once, even when several copies of this code run. */
import { tf } from '../../tf.ts';

const BACKEND = 'wasm';
/** Marks the kernel functions installed here, so a second registration (even from another copy of this module) is a no-op. */
const MARK = Symbol.for('lrnet.wasmTrainingKernel');

function marked(f: tf.KernelFunc): tf.KernelFunc {
  (f as unknown as Record<symbol, boolean>)[MARK] = true;
  return f;
}

function isMarked(config: tf.KernelConfig | undefined): boolean {
  return config != null && (config.kernelFunc as unknown as Record<symbol, boolean>)[MARK] === true;
}

/** The wasm backend's kernel config for `name`; throws when the backend is not loaded. */
export function required(name: string): tf.KernelConfig {
  const config = tf.getKernel(name, BACKEND);
  if (config == null) {
    throw new Error(`kernel ${name} is not registered for '${BACKEND}': import '@tensorflow/tfjs-backend-wasm' first`);
  }
  return config;
}

/** Registers `kernelFunc` for name on wasm, replacing (but keeping the setup/dispose of) an existing kernel. */
export function install(name: string, kernelFunc: tf.KernelFunc): void {
  const existing = tf.getKernel(name, BACKEND);
  if (isMarked(existing)) return;
  if (existing != null) tf.unregisterKernel(name, BACKEND);
  tf.registerKernel({
    kernelName: name,
    backendName: BACKEND,
    kernelFunc: marked(kernelFunc),
    // The original's setup (e.g. binding its wasm function) must still run at setBackend: we call it.
    setupFunc: existing?.setupFunc,
    disposeFunc: existing?.disposeFunc,
  });
}
