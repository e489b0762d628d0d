// The full bundle: tfjs-core alone registers no gradients, which the training step needs.
import * as tf from '@tensorflow/tfjs';

export type Tf = typeof tf;

/**
 * TensorFlow.js on its WebGPU backend, on the adapter `navigator.gpu` gives (set by nodeGpu()).
 * The backend registers itself on import only when navigator.gpu exists, hence the late import.
 */
export async function tfjsWebGpu(): Promise<Tf | { reason: string }> {
  try {
    await import('@tensorflow/tfjs-backend-webgpu');
    tf.enableProdMode();
    if (!(await tf.setBackend('webgpu'))) return { reason: 'tf.setBackend("webgpu") failed' };
    await tf.ready();
    return tf;
  } catch (e) {
    return { reason: `tfjs-backend-webgpu: ${e instanceof Error ? e.message : e}` };
  }
}
