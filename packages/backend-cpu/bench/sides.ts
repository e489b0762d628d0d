import type { CpuDevice } from '@kiln/backend-cpu';
import { type BufferView, byteSizeOf, type ConcreteType, type Subgraph } from '@kiln/ir';
import * as tf from '@tensorflow/tfjs-core';

/**
 * One contestant on one case: `run` is what gets timed, `result` computes and reads the output once so the two
 * sides can be checked against each other before any timing, and `dispose` releases what setup
 * made.
 */
export interface Side {
  readonly run: () => void;
  readonly result: () => Float32Array;
  readonly dispose: () => void;
}

/**
 * kiln: the subgraph is compiled, its buffers allocated and its inputs written once, so the timed
 * call is exactly what an executor pays per step once the memory plan is settled.
 */
export function kilnSide(device: CpuDevice, subgraph: Subgraph, inputs: readonly Float32Array[]): Side {
  const typeOf = (v: number) => subgraph.values[v]!.type as ConcreteType;
  const bind = (t: ConcreteType): BufferView => ({
    buffer: device.allocate(byteSizeOf(t)),
    byteOffset: 0,
    dtype: t.dtype,
    shape: t.shape,
  });
  const exe = device.compileSync(subgraph);
  const ins = subgraph.inputs.map((v) => bind(typeOf(v)));
  const outs = subgraph.results.map((v) => bind(typeOf(v)));
  for (const [i, view] of ins.entries()) device.writeSync(view.buffer, 0, inputs[i]!);
  return {
    run: () => exe.runSync(ins, outs),
    result: () => {
      exe.runSync(ins, outs);
      const out = outs[0]!;
      return new Float32Array(device.readSync(out.buffer, 0, out.buffer.byteLength).buffer);
    },
    dispose: () => {
      exe.dispose();
      for (const view of [...ins, ...outs]) device.free(view.buffer);
    },
  };
}

/**
 * tfjs-backend-cpu: inputs are tensors made once; each timed call runs the ops (the cpu backend
 * computes eagerly), reads the result with dataSync so nothing is left pending, and lets tidy
 * dispose every intermediate, so memory stays flat across iterations.
 */
export function tfjsSide(
  inputs: readonly Float32Array[],
  shapes: readonly (readonly number[])[],
  op: (...xs: tf.Tensor[]) => tf.Tensor,
): Side {
  const xs = inputs.map((data, i) => tf.tensor(data, [...shapes[i]!], 'float32'));
  return {
    run: () => {
      tf.tidy(() => {
        op(...xs).dataSync();
      });
    },
    result: () => tf.tidy(() => Float32Array.from(op(...xs).dataSync())),
    dispose: () => {
      for (const x of xs) x.dispose();
    },
  };
}
