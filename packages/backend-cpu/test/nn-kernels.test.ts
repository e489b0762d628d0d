import { CpuDevice } from '@kiln/backend-cpu';
import { type OpName, opDef, Prng, type RefTensor, refTensor } from '@kiln/ir';
import {
  compareToReference,
  formatReport,
  runConformance,
  runOnDevice,
  singleOpSubgraph,
} from '@kiln/ir/conformance';
import { describe, expect, it } from 'vitest';

const device = new CpuDevice();
const rng = new Prng(99);

const NN_OPS: OpName[] = [
  'conv2d',
  'conv2dBackpropInput',
  'conv2dBackpropFilter',
  'maxPool',
  'avgPool',
  'maxPoolGrad',
  'avgPoolGrad',
  'softmaxCrossEntropy',
  'sparseSoftmaxCrossEntropy',
];

const fill = (shape: number[]) =>
  refTensor(
    'float32',
    shape,
    Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal()),
  );

/** Runs one op on the CPU device and returns its first result next to the reference's. */
async function run(op: OpName, inputs: RefTensor[], attrs: Record<string, unknown>) {
  const sub = singleOpSubgraph(
    op,
    inputs.map((t) => ({ dtype: t.dtype, shape: t.shape })),
    attrs,
  );
  const node = sub.nodes[sub.nodes.length - 1]!;
  const want = opDef(op).reference(inputs, node.attrs)[0]!;
  const host = inputs.map((t) => (t.dtype === 'int32' ? Int32Array.from(t.data) : Float32Array.from(t.data)));
  const [got] = await runOnDevice(device, sub, host);
  return { got: got!, want };
}

/** conv2d, its input gradient and its filter gradient on one problem, each against the reference. */
async function checkConv(x: number[], f: number[], attrs: Record<string, unknown>) {
  const xs = fill(x);
  const fs = fill(f);
  const fwd = await run('conv2d', [xs, fs], attrs);
  expect(compareToReference(fwd.got, fwd.want, f[0]! * f[1]! * f[2]!)).toBeNull();
  const dy = fill([...fwd.want.shape]);
  const bi = await run('conv2dBackpropInput', [dy, fs], { ...attrs, inputShape: x });
  expect(compareToReference(bi.got, bi.want, f[0]! * f[1]! * f[3]!)).toBeNull();
  const bf = await run('conv2dBackpropFilter', [xs, dy], { ...attrs, filterShape: f });
  expect(compareToReference(bf.got, bf.want, dy.shape[0]! * dy.shape[1]! * dy.shape[2]!)).toBeNull();
}

describe('backend-cpu nn kernels', () => {
  it('pass the conformance kit', async () => {
    const report = await runConformance(device, { ops: NN_OPS });
    if (report.failures.length > 0) console.error(formatReport(report));
    expect(report.failures).toEqual([]);
    expect(report.unsupported).toEqual([]);
    expect(report.passed).toBeGreaterThan(NN_OPS.length * 15);
  });

  // 2*14*14 = 392 im2col rows (several 64-row GEMM panels with a ragged edge), 75 columns.
  it('conv2d 2x28x28x3 * 5x5x3x8, stride 2, same', async () => {
    await checkConv([2, 28, 28, 3], [5, 5, 3, 8], { strides: [2, 2], padding: 'same' });
  });

  // 400 columns crosses the 256-deep GEMM block; 1568 rows need several im2col blocks.
  it('conv2d with depth beyond one GEMM block and several im2col blocks', async () => {
    await checkConv([2, 28, 28, 16], [5, 5, 16, 6], { padding: 'same' });
  });

  it('conv2d dilated with explicit padding, and a pointwise (1x1) convolution', async () => {
    const pads = [
      [3, 1],
      [0, 2],
    ];
    await checkConv([1, 19, 23, 5], [3, 4, 5, 7], {
      padding: 'explicit',
      pads,
      dilations: [2, 3],
      strides: [1, 2],
    });
    await checkConv([3, 9, 11, 13], [1, 1, 13, 17], {});
  });

  // 2*64*64 = 8192 rows x 144 columns exceeds one filter-gradient block: partial sums are added.
  it('conv2dBackpropFilter summed over several blocks', async () => {
    const x = fill([2, 64, 64, 16]);
    const dy = fill([2, 64, 64, 4]);
    const attrs = { padding: 'same', filterShape: [3, 3, 16, 4] };
    const { got, want } = await run('conv2dBackpropFilter', [x, dy], attrs);
    expect(compareToReference(got, want, 2 * 64 * 64)).toBeNull();
  });

  it('maxPoolGrad sends a tied window to its first element', async () => {
    const x = refTensor('float32', [1, 2, 4, 1], [2, 2, 1, 1, 2, 2, 1, 1]);
    const dy = refTensor('float32', [1, 1, 2, 1], [3, 4]);
    const { got, want } = await run('maxPoolGrad', [x, dy, dy], {
      windowSize: [2, 2],
      strides: [2, 2],
      padding: 'valid',
    });
    expect(Array.from(got)).toEqual([3, 0, 4, 0, 0, 0, 0, 0]);
    expect(compareToReference(got, want)).toBeNull();
  });

  it('softmaxCrossEntropy stays finite for logits of ±1e4', async () => {
    const logits = refTensor('float32', [2, 3], [1e4, -1e4, 0, -1e4, -1e4, -1e4]);
    const labels = refTensor('float32', [2, 3], [0, 1, 0, 0, 0, 1]);
    const { got, want } = await run('softmaxCrossEntropy', [logits, labels], {});
    expect(Array.from(got).every(Number.isFinite)).toBe(true);
    expect(got[0]).toBe(2e4);
    expect(got[1]).toBeCloseTo(Math.log(3), 6);
    expect(compareToReference(got, want)).toBeNull();
  });
});
