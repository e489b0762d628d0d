import { type OpName, opDef, PRIMITIVE_OP_NAMES } from '../ops/index.js';
import { refTensor } from '../ref-tensor.js';
import type { KernelFactory, KernelTable } from './host-kernel.js';

/**
 * A kernel that runs an op's float64 reference implementation and stores the results in the
 * outputs' dtypes: correct by definition and slow, as a reference is. A plugin author's first
 * device can start from these and replace the ones that show up in profiles; a test device can be
 * built of nothing else.
 */
export function referenceKernel(op: OpName): KernelFactory<unknown> {
  const def = opDef(op);
  return ({ attrs, inputs }) =>
    (ins, outs) => {
      const results = def.reference(
        ins.map((data, i) => refTensor(inputs[i]!.dtype, inputs[i]!.shape, data)),
        attrs as never,
      );
      results.forEach((r, k) => outs[k]!.set(r.data));
    };
}

/** A reference kernel for every primitive: a complete kernel table, claiming no composite. */
export const REFERENCE_KERNELS: KernelTable = Object.fromEntries(
  PRIMITIVE_OP_NAMES.map((op) => [op, referenceKernel(op)]),
) as unknown as KernelTable;
