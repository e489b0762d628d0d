import { normalizeAxis } from '../shape.js';
import type { KernelFactory } from './host-kernel.js';

/**
 * concat on host memory, for any dtype: each input's rows (everything from the axis on) land side
 * by side in the output's rows, one typed-array copy per input row. What a host device wants
 * unless it has a faster way; the CPU and native devices both use it.
 */
export const hostConcat: KernelFactory<{ axis: number }> = (node) => {
  const outShape = node.outputs[0]!.shape;
  const axis = normalizeAxis(node.attrs.axis, outShape.length, 'concat');
  const outer = outShape.slice(0, axis).reduce((a, b) => a * b, 1);
  const rowOut = outShape.slice(axis).reduce((a, b) => a * b, 1);
  const rows = node.inputs.map((t) => t.shape.slice(axis).reduce((a, b) => a * b, 1));
  return (ins, [out]) => {
    let col = 0;
    ins.forEach((x, k) => {
      const row = rows[k]!;
      for (let o = 0; o < outer; o++) out!.set(x.subarray(o * row, (o + 1) * row) as never, o * rowOut + col);
      col += row;
    });
  };
};
