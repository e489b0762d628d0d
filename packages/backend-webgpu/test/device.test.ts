import { createWebGpuDevice, type WebGpuDevice, webgpuPlugin } from '@kiln/backend-webgpu';
import {
  type ConcreteType,
  checkDevice,
  type DType,
  extractSubgraph,
  fuseElementwise,
  Graph,
  type GraphData,
  interpret,
  KERNEL_ABI_VERSION,
  KilnError,
  type OpName,
  opDef,
  Prng,
  requiredNodes,
  type SymbolicTensor,
  type ValueDomain,
  type ValueId,
} from '@kiln/ir';
import { compareToReference, generateInput, runOnDevice, singleOpSubgraph } from '@kiln/ir/conformance';
import { afterAll, describe, expect, it } from 'vitest';
import { LIMITS, newDevice, noAdapter, suiteGpu, within } from './gpu.js';

const f32 = (shape: number[]): ConcreteType => ({ dtype: 'float32', shape });
type Input = { dtype: DType; shape: number[]; domain?: ValueDomain };
const hostOf = (dtype: DType, data: ArrayLike<number>) =>
  dtype === 'float32'
    ? Float32Array.from(data)
    : dtype === 'int32'
      ? Int32Array.from(data)
      : Uint8Array.from(data);

/** Extracts what computes `results` from the `bind`ings, runs it on the device, checks it against interpret. */
async function runAndCheck(
  device: Awaited<ReturnType<typeof newDevice>>,
  g: GraphData,
  bind: Map<ValueId, ConcreteType>,
  results: readonly ValueId[],
  seed: number,
) {
  const bound = new Set([...bind.keys()].map((v) => g.values[v]!.node));
  const nodes = requiredNodes(g, results).filter((id) => !bound.has(id));
  const { subgraph } = extractSubgraph(g, { nodes, bind, results });
  const rng = new Prng(seed);
  const refs = [...bind.values()].map((t) => generateInput(rng, t));
  const env = interpret(g, nodes, new Map([...bind.keys()].map((v, i) => [v, refs[i]!])));
  const got = await runOnDevice(
    device,
    subgraph,
    refs.map((r) => Float32Array.from(r.data)),
  );
  results.forEach((v, i) => {
    expect(compareToReference(got[i]!, env.get(v)!, 64)).toBeNull();
  });
  return subgraph;
}

/** A small model with an unknown batch size: matmul, bias, relu, softmax, and a batch sum. */
function model(): { g: Graph; x: SymbolicTensor; w: SymbolicTensor; results: ValueId[] } {
  const g = new Graph();
  const x = g.placeholder('float32', [null, 8], 'x');
  const w = g.placeholder('float32', [8, 4], 'w');
  const [h] = g.apply('matmul', [x, w], {});
  const bias = g.constant({ dtype: 'float32', shape: [4], data: new Float32Array([0.5, -1, 2, 0]) });
  const [b] = g.apply('add', [h!, bias], {});
  const [r] = g.apply('relu', [b!], {});
  const [s] = g.apply('softmax', [r!], {});
  const [m] = g.apply('sum', [s!], { axes: [0] });
  return { g, x, w, results: [s!.id, m!.id] };
}

describe('createWebGpuDevice without a GPU', () => {
  it('returns null and says why; the plugin fails with a KilnError', async () => {
    let reason = '';
    expect(await createWebGpuDevice(null, { onUnavailable: (r) => (reason = r) })).toBeNull();
    expect(reason).toMatch(/not available/);
    const error = await webgpuPlugin.create({ gpu: null }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KilnError);
    expect((error as KilnError).code).toBe('unsupported');
  });
});

describe.skipIf(noAdapter !== null)(
  `backend-webgpu device${noAdapter ? ` (skipped: ${noAdapter})` : ''}`,
  () => {
    const devices: Awaited<ReturnType<typeof newDevice>>[] = [];
    const fresh = async () => {
      const d = await newDevice();
      devices.push(d);
      return d;
    };
    afterAll(() => {
      for (const d of devices) d.dispose();
    });
    // Tests that need no device of their own share one: fewer devices, fewer pipelines to create.
    let shared: Promise<WebGpuDevice> | null = null;
    const sharedDevice = () => (shared ??= fresh());
    /** A test on a device, within the suite's limit; a hang says what the device was waiting for. */
    const gpuTest = (
      name: string,
      device: () => Promise<WebGpuDevice>,
      body: (device: WebGpuDevice) => Promise<void>,
    ) =>
      it(
        name,
        async () => {
          const d = await device();
          await within(LIMITS.deviceTest, name, d, () => body(d));
        },
        LIMITS.deviceTest + LIMITS.backstop,
      );

    it('is a plugin of the current kernel ABI', async () => {
      expect(webgpuPlugin.abi).toBe(KERNEL_ABI_VERSION);
      const device = await webgpuPlugin.create({ gpu: suiteGpu(), name: 'webgpu:7' });
      devices.push(device);
      checkDevice(device);
      expect(device.name).toBe('webgpu:7');
      expect(device.kind).toBe('webgpu');
    });

    gpuTest('compiles no new pipelines for a second batch size', fresh, async (device) => {
      const { g, x, w, results } = model();
      const bind = (batch: number) =>
        new Map([
          [x.id, f32([batch, 8])],
          [w.id, f32([8, 4])],
        ]);
      await runAndCheck(device, g, bind(3), results, 1);
      const pipelines = device.stats.pipelines;
      expect(pipelines).toBeGreaterThan(0);
      await runAndCheck(device, g, bind(17), results, 2);
      await runAndCheck(device, g, bind(64), results, 3);
      expect(device.stats.pipelines).toBe(pipelines);
    });

    // On a software adapter a pipeline costs up to seconds to compile: the tests below keep count.
    gpuTest('compiles one matmul pipeline for every combination of transposes', fresh, async (device) => {
      const rng = new Prng(9);
      for (const [transposeA, transposeB] of [
        [false, false],
        [true, false],
        [false, true],
        [true, true],
      ]) {
        const a = f32(transposeA ? [5, 3] : [3, 5]);
        const b = f32(transposeB ? [4, 5] : [5, 4]);
        const sub = singleOpSubgraph('matmul', [a, b], { transposeA, transposeB });
        const node = sub.nodes[sub.nodes.length - 1]!;
        const refs = [a, b].map((t) => generateInput(rng, t));
        const got = await runOnDevice(
          device,
          sub,
          refs.map((r) => Float32Array.from(r.data)),
        );
        expect(compareToReference(got[0]!, opDef('matmul').reference(refs, node.attrs)[0]!, 1)).toBeNull();
      }
      // The staging order is a parameter: one shader, where there were four.
      expect(device.stats.pipelines).toBe(1);
    });

    gpuTest('compiles one pipeline for kernels that generate the same shader', fresh, async (device) => {
      const x = new Float32Array([1, 2, 3, 4, 5, 6]);
      const t = [{ dtype: 'float32' as const, shape: [6] }];
      const [cast] = await runOnDevice(device, singleOpSubgraph('cast', t, { dtype: 'float32' }), [x]);
      const [transposed] = await runOnDevice(device, singleOpSubgraph('transpose', t, { perm: [0] }), [x]);
      const [sliced] = await runOnDevice(device, singleOpSubgraph('slice', t, { begin: [1], size: [3] }), [
        x,
      ]);
      expect([...cast!, ...transposed!, ...sliced!]).toEqual([1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6, 2, 3, 4]);
      // An identity cast, a transpose and a slice of a vector are the same strided copy.
      expect(device.stats).toEqual({ pipelines: 1, dispatches: 3 });
    });

    gpuTest(
      'a test that runs out of time says what the device was waiting for',
      sharedDevice,
      async (device) => {
        const bytes = 64 << 20;
        const buffer = device.allocate(bytes);
        const read = device.read(buffer, 0, bytes);
        // Copying and mapping 64 MiB takes milliseconds at best: the watchdog's 1 ms runs out first.
        const error = await within(1, 'reading 64 MiB', device, () => read).then(
          () => null,
          (e: unknown) => e,
        );
        expect((error as Error).message).toBe(
          `reading 64 MiB did not finish in 0.001 s; ${device.name} was waiting for reading ${bytes} bytes at byte 0`,
        );
        await read;
        device.free(buffer);
      },
    );

    gpuTest('runs a fusion group from the fusion pass as one shader', sharedDevice, async (device) => {
      const g = new Graph();
      const x = g.placeholder('float32', [5, 6], 'x');
      const y = g.placeholder('float32', [6], 'y');
      const [a] = g.apply('mul', [x, y], {});
      const [b] = g.apply('tanh', [a!], {});
      const [c] = g.apply('sub', [b!, y], {});
      const [d] = g.apply('relu', [c!], {});
      const fused = fuseElementwise(g);
      expect(fused.groups).toBe(1);
      const fg = fused.graph;
      const out = fused.valueMap.get(d!.id)!;
      const fx = fused.valueMap.get(x.id)!;
      const fy = fused.valueMap.get(y.id)!;
      const before = device.stats.dispatches;
      const sub = await runAndCheck(
        device,
        fg,
        new Map([
          [fx, f32([5, 6])],
          [fy, f32([6])],
        ]),
        [out],
        4,
      );
      expect(sub.nodes.filter((n) => n.op === 'fused')).toHaveLength(1);
      expect(device.stats.dispatches - before).toBe(1);
    });

    gpuTest('runs a fusion group with more inputs than a shader may bind', sharedDevice, async (device) => {
      const g = new Graph();
      const xs = Array.from({ length: 20 }, (_, i) =>
        g.placeholder('float32', i % 2 ? [4, 3] : [3], `x${i}`),
      );
      let acc = xs[0]!;
      for (const x of xs.slice(1)) acc = g.apply(acc.shape.length > 1 ? 'mul' : 'add', [acc, x], {})[0]!;
      const [last] = g.apply('tanh', [acc], {});
      const fused = fuseElementwise(g);
      expect(fused.groups).toBe(1);
      const fusedNode = fused.graph.nodes.find((n) => n.op === 'fused')!;
      expect(fusedNode.inputs.length).toBe(20);
      expect(
        device.supports({
          op: 'fused',
          attrs: fusedNode.attrs,
          inputs: fusedNode.inputs.map((v) => fused.graph.values[v]!.type as ConcreteType),
          outputs: fusedNode.outputs.map((v) => fused.graph.values[v]!.type as ConcreteType),
        }).ok,
      ).toBe(true);
      const sub = await runAndCheck(
        device,
        fused.graph,
        new Map(xs.map((x, i) => [fused.valueMap.get(x.id)!, f32(i % 2 ? [4, 3] : [3])])),
        [fused.valueMap.get(last!.id)!],
        5,
      );
      // The kit's runner packs every tensor into one buffer; here each input has its own, so without
      // staging the shader would need 21 storage bindings.
      const exe = await device.compile(sub);
      const rng = new Prng(6);
      const views = sub.inputs.map((v) => {
        const t = sub.values[v]!.type as ConcreteType;
        const data = Float32Array.from(generateInput(rng, t).data);
        return { view: { buffer: device.allocate(data.byteLength), byteOffset: 0, ...t }, data };
      });
      for (const { view, data } of views) await device.write(view.buffer, 0, data);
      const out = { buffer: device.allocate(48), byteOffset: 0, dtype: 'float32' as const, shape: [4, 3] };
      await exe.run(
        views.map((v) => v.view),
        [out],
      );
      const got = new Float32Array((await device.read(out.buffer, 0, 48)).buffer);
      const want = await runOnDevice(
        device,
        sub,
        views.map((v) => v.data),
      );
      expect([...got]).toEqual([...want[0]!]);
    });

    gpuTest(
      'copies results that are inputs, or repeat another result, into their views',
      sharedDevice,
      async (device) => {
        const g = new Graph();
        const x = g.placeholder('bool', [7], 'x');
        const [n] = g.apply('logicalNot', [x], {});
        const { subgraph } = extractSubgraph(g, {
          nodes: [n!.node.id],
          bind: new Map([[x.id, { dtype: 'bool', shape: [7] }]]),
          results: [x.id, n!.id, n!.id],
        });
        const data = Uint8Array.from([1, 0, 0, 1, 1, 0, 1]);
        const [same, not, again] = await runOnDevice(device, subgraph, [data]);
        expect([...same!]).toEqual([...data]);
        expect([...not!]).toEqual([0, 1, 1, 0, 0, 1, 0]);
        expect([...again!]).toEqual([0, 1, 1, 0, 0, 1, 0]);
      },
    );

    gpuTest('turns a device error into a KilnError naming the node', fresh, async (device) => {
      const g = new Graph();
      const x = g.placeholder('float32', [1], 'x');
      // Just under 4 GiB of float32, the most a kiln tensor may hold: more than a WebGPU adapter's
      // bindings allow, so the device itself refuses it.
      const [big] = g.apply('broadcastTo', [x], { shape: [32768, 32767] }, 'huge');
      const [s] = g.apply('sum', [big!], {});
      const { subgraph } = extractSubgraph(g, {
        nodes: [big!.node.id, s!.node.id],
        bind: new Map([[x.id, f32([1])]]),
        results: [s!.id],
      });
      const error = await device.compile(subgraph).then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(KilnError);
      expect((error as KilnError).message).toMatch(
        /broadcastTo 'huge'.*WebGPU (validation|out-of-memory) error/,
      );
      // The device is still usable afterwards.
      const m = model();
      await runAndCheck(
        device,
        m.g,
        new Map([
          [m.x.id, f32([3, 8])],
          [m.w.id, f32([8, 4])],
        ]),
        m.results,
        8,
      );
    });

    gpuTest('survives device loss: calls fail with KilnErrors, a new device works', fresh, async (device) => {
      const buffer = device.allocate(16);
      await device.write(buffer, 0, new Float32Array([1, 2, 3, 4]));
      device.gpuDevice.destroy();
      expect(await device.lost).toMatch(/destroyed/);
      await expect(device.read(buffer, 0, 16)).rejects.toBeInstanceOf(KilnError);
      expect(() => device.allocate(16)).toThrow(KilnError);
      const { g, x, w, results } = model();
      const { subgraph } = extractSubgraph(g, {
        nodes: g.nodes.map((n) => n.id).filter((id) => id > 1),
        bind: new Map([
          [x.id, f32([2, 8])],
          [w.id, f32([8, 4])],
        ]),
        results,
      });
      await expect(device.compile(subgraph)).rejects.toThrow(/lost/);

      // The same kernels as the first test: a new device creates its pipelines again, but the
      // driver's shader cache has them, so this costs no compiles.
      const again = await fresh();
      await runAndCheck(
        again,
        g,
        new Map([
          [x.id, f32([2, 8])],
          [w.id, f32([8, 4])],
        ]),
        results,
        7,
      );
    });

    gpuTest(
      'matches the reference on shapes larger than the kit tries (many tiles, long reductions)',
      sharedDevice,
      async (device) => {
        const cases: [OpName, Input[], Record<string, unknown>][] = [
          [
            'matmul',
            [
              { dtype: 'float32', shape: [2, 200, 130] },
              { dtype: 'float32', shape: [67, 200] },
            ],
            { transposeA: true, transposeB: true },
          ],
          [
            'matmul',
            [
              { dtype: 'int32', shape: [129, 65] },
              { dtype: 'int32', shape: [65, 70] },
            ],
            {},
          ],
          ['sum', [{ dtype: 'float32', shape: [100_000] }], { axes: null }],
          ['max', [{ dtype: 'float32', shape: [30, 3000], domain: 'special' }], { axes: [1] }],
          ['mean', [{ dtype: 'float32', shape: [2, 70_000] }], { axes: [1] }],
          ['min', [{ dtype: 'int32', shape: [40_000, 2] }], { axes: [0], keepDims: true }],
          ['argmax', [{ dtype: 'int32', shape: [5000, 3], domain: { range: [-3, 3] } }], { axis: 0 }],
          ['softmax', [{ dtype: 'float32', shape: [4, 1000] }], { axis: -1 }],
          [
            'conv2d',
            [
              { dtype: 'float32', shape: [2, 12, 12, 16] },
              { dtype: 'float32', shape: [3, 3, 16, 8] },
            ],
            { padding: 'same', strides: [2, 1] },
          ],
          [
            'conv2dBackpropInput',
            [
              { dtype: 'float32', shape: [3, 7, 7, 24] },
              { dtype: 'float32', shape: [3, 3, 5, 24] },
            ],
            { padding: 'same', strides: [2, 2], inputShape: [3, 13, 14, 5] },
          ],
          [
            'conv2dBackpropFilter',
            [
              { dtype: 'float32', shape: [8, 15, 15, 6] },
              { dtype: 'float32', shape: [8, 7, 7, 130] },
            ],
            { padding: 'valid', strides: [2, 2], filterShape: [3, 3, 6, 130] },
          ],
          [
            'gather',
            [
              { dtype: 'bool', shape: [300, 7] },
              { dtype: 'int32', shape: [1001], domain: { range: [-5, 305] } },
            ],
            { axis: 0 },
          ],
        ];
        const rng = new Prng(11);
        for (const [op, inputs, attrs] of cases) {
          const types = inputs.map((i) => ({ dtype: i.dtype, shape: i.shape }));
          const subgraph = singleOpSubgraph(op, types, attrs);
          const node = subgraph.nodes[subgraph.nodes.length - 1]!;
          const refs = inputs.map((i) => generateInput(rng, i));
          const want = opDef(op).reference(refs, node.attrs);
          const got = await runOnDevice(
            device,
            subgraph,
            refs.map((r) => hostOf(r.dtype, r.data)),
          );
          const factor = opDef(op).tolerance?.(types, node.attrs) ?? 1;
          expect(compareToReference(got[0]!, want[0]!, Math.max(1, factor)), op).toBeNull();
        }
      },
    );

    gpuTest(
      'writes and reads bytes at any offset without touching their neighbours',
      sharedDevice,
      async (device) => {
        const buffer = device.allocate(23);
        await device.write(buffer, 0, new Uint8Array(23).fill(0xee));
        await device.write(buffer, 3, Uint8Array.from([1, 2, 3, 4, 5]));
        await device.write(buffer, 13, Uint8Array.from([9, 8, 7]));
        const all = await device.read(buffer, 0, 23);
        expect([...all]).toEqual([
          0xee, 0xee, 0xee, 1, 2, 3, 4, 5, 0xee, 0xee, 0xee, 0xee, 0xee, 9, 8, 7, 0xee, 0xee, 0xee, 0xee,
          0xee, 0xee, 0xee,
        ]);
        expect([...(await device.read(buffer, 5, 3))]).toEqual([3, 4, 5]);
        // Queue order is call order: a read issued before an earlier write resolved still sees it.
        const other = device.allocate(8);
        const written = device.write(other, 0, Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]));
        const readBack = device.read(other, 2, 5);
        await written;
        expect([...(await readBack)]).toEqual([3, 4, 5, 6, 7]);
        device.free(buffer);
        await expect(device.read(buffer, 0, 4)).rejects.toBeInstanceOf(KilnError);
      },
    );
  },
);
