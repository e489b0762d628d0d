import {
  type DType,
  type FusedStep,
  type HostArray,
  type KernelFactory,
  type KernelFn,
  referenceKernel,
} from '@kiln/ir';
import type { NativeAddon } from './addon.js';
import type { Groups } from './groups.js';
import { matmulKernel, matmulLibrary, onednnKernel, onednnMatmul, productSize } from './matmul.js';
import { declineFused, fusedKernel } from './program.js';
import type { Threading } from './threading.js';

/**
 * fusedMatmul on the native device: the product on oneDNN or OpenBLAS (see matmulLibrary), then
 * the epilogue as a native program over the output, in place. Where oneDNN runs the product and the
 * epilogue starts by adding a row of the output's width (a dense layer's bias), the bias is
 * oneDNN's own bias argument, added as each block of the product is stored, and the program starts
 * after it (there is none left for a bias alone).
 *
 * Why the rest is not oneDNN's post-ops as well: measured in C on an AVX-512 EPYC with oneDNN 2.6,
 * one thread, post-ops cost more than the native pass they save. At 4096 x 64 x 256, a bias as a
 * binary post-op added 240 µs to a 750 µs product, as the bias argument 20. oneDNN's relu loses NaN
 * (it is a max against 0); the form that keeps it (elu with a zero slope, then + 0 for the sign of
 * zero) computes an exponential, and bias-and-relu products with it ran 1.03-1.53x slower than the
 * plain product followed by a separate loop. As shipped, relu(x w + b) measured 0.99-1.02x its
 * expansion (a product, then a fused group into another buffer) at the MLP's 128 x 784 x 256, and
 * 1.13-1.15x at 16384 x 64 x 256, whose 16 MiB product the expansion stores and reads back
 * (`npm run bench`, four runs).
 */
interface FusedMatmulAttrs {
  readonly transposeA: boolean;
  readonly transposeB: boolean;
  readonly program: readonly FusedStep[];
}

/**
 * Why the device declines a fusedMatmul node, if it does: its epilogue must be a native program,
 * and its result float32, since the product is stored where the result goes.
 */
export function declineFusedMatmul(
  attrs: Readonly<Record<string, unknown>>,
  inputs: readonly DType[],
  result: DType,
): string | undefined {
  if (inputs[0] !== 'float32' || result !== 'float32')
    return `the product is ${inputs[0]} and the result ${result}; the native epilogue runs in place over float32`;
  const program = attrs.program as readonly FusedStep[];
  const others = inputs.slice(2);
  return declineFused({ program, outputs: [others.length + program.length] }, ['float32', ...others]);
}

/**
 * The epilogue input (its position among the other inputs) that its first step adds to the product
 * as a bias, and the program left after it; undefined where the epilogue does not start that way.
 */
export function splitBias(
  program: readonly FusedStep[],
  others: readonly (readonly number[])[],
  width: number,
): { bias: number; rest: FusedStep[] } | undefined {
  const [first, ...later] = program;
  if (first?.[0] !== 'add') return undefined;
  const [x, y] = first[1];
  const slot = x === 0 ? y! : y === 0 ? x! : -1;
  const shape = others[slot - 1];
  const isRow =
    shape !== undefined && shape.at(-1) === width && shape.every((d, i) => d === 1 || i === shape.length - 1);
  // The later steps must not read the bare product, which oneDNN never stores.
  if (!isRow || later.some((step) => step[1].includes(0))) return undefined;
  // The sum (slot others + 1) takes the product's slot 0; later steps move one slot down.
  const sum = others.length + 1;
  const move = (s: number) => (s === sum ? 0 : s > sum ? s - 1 : s);
  const rest = later.map(
    (step): FusedStep =>
      step[0] === 'cast' ? ['cast', [move(step[1][0])], step[2]] : [step[0], step[1].map(move)],
  );
  return { bias: slot - 1, rest };
}

export function fusedMatmulKernel(
  addon: NativeAddon,
  threading: Threading,
  groups?: Groups,
): KernelFactory<FusedMatmulAttrs> {
  const product = matmulKernel(addon, threading);
  const epilogue = fusedKernel(addon, threading, groups);
  const reference = referenceKernel('fusedMatmul');
  return (node) => {
    const [a, b, ...others] = node.inputs;
    const out = node.outputs[0]!;
    const { transposeA, transposeB, program } = node.attrs;
    if (a!.dtype !== 'float32' || out.dtype !== 'float32') return reference(node);
    const bare = { dtype: a!.dtype, shape: out.shape };
    // The program over the output (slot 0) and the other inputs, in place, or nothing to do.
    const after = (steps: readonly FusedStep[]): KernelFn | undefined =>
      steps.length === 0
        ? undefined
        : epilogue({
            attrs: { program: steps, outputs: [others.length + steps.length] },
            inputs: [bare, ...others],
            outputs: [out],
          });
    const { flops, n } = productSize(a!.shape, out.shape, transposeA);
    const split = splitBias(
      program,
      others.map((t) => t.shape),
      n,
    );
    if (split && matmulLibrary(addon, flops) === 'onednn') {
      const { bias, rest } = split;
      const primitive = onednnMatmul(
        addon,
        a!.shape,
        b!.shape,
        out.shape,
        transposeA,
        transposeB,
        others[bias]!.shape,
      );
      if (primitive)
        return inSequence(onednnKernel(addon, threading, primitive, flops, 2 + bias), after(rest));
    }
    const bareProduct = product({ attrs: { transposeA, transposeB }, inputs: [a!, b!], outputs: [bare] });
    return inSequence(bareProduct, after(program));
  };
}

/** The product into the output, then (if any) the epilogue over the output and the other inputs. */
function inSequence(product: KernelFn, epilogue: KernelFn | undefined): KernelFn {
  if (!epilogue) return product;
  const epilogueInputs = (ins: readonly HostArray[], outs: readonly HostArray[]) => [
    outs[0]!,
    ...ins.slice(2),
  ];
  const run = (ins: readonly HostArray[], outs: readonly HostArray[]) => {
    product(ins, outs);
    epilogue(epilogueInputs(ins, outs), outs);
  };
  if (!product.offThread && !epilogue.offThread) return run;
  const queued = async (ins: readonly HostArray[], outs: readonly HostArray[]) => {
    await (product.offThread ?? product)(ins, outs);
    await (epilogue.offThread ?? epilogue)(epilogueInputs(ins, outs), outs);
  };
  return Object.assign(run, { offThread: queued });
}
