import {
  ALIGNMENT_SLACK,
  exp,
  extractSubgraph,
  Graph,
  type HostArray,
  type HostBuffer,
  HostDevice,
  type KernelFactory,
  KilnError,
  REFERENCE_KERNELS,
  sqrt,
} from '@kiln/ir';
import { formatReport, runConformance, singleOpSubgraph } from '@kiln/ir/conformance';
import { describe, expect, it } from 'vitest';

describe('HostDevice', () => {
  it('with the reference kernels is a complete device: the whole kit passes', async () => {
    const device = new HostDevice({ name: 'ref:0', kind: 'reference', kernels: REFERENCE_KERNELS });
    const report = await runConformance(device);
    if (report.failures.length > 0) console.error(formatReport(report));
    expect(report.failures).toEqual([]);
    expect(formatReport(report)).toMatch(/runs as expansions \(declined composites\): neg, abs/);
  });

  it('starts buffers and arenas where alignedStart says, and keeps them there through reuse', async () => {
    // Where each kernel's arrays start in their ArrayBuffers.
    const starts: number[] = [];
    const watched =
      (op: 'exp' | 'sqrt'): KernelFactory<unknown> =>
      (node) => {
        const run = REFERENCE_KERNELS[op](node as never);
        return (ins: readonly HostArray[], outs: readonly HostArray[]) => {
          starts.push(ins[0]!.byteOffset, outs[0]!.byteOffset);
          run(ins, outs);
        };
      };
    const device = new HostDevice({
      name: 'aligned:0',
      kind: 'aligned',
      kernels: { ...REFERENCE_KERNELS, exp: watched('exp'), sqrt: watched('sqrt') },
      recycle: true,
      alignedStart: () => 20,
    });
    const x = device.allocate(12);
    expect((x as HostBuffer).bytes.byteLength).toBe(12 + ALIGNMENT_SLACK);
    expect((x as HostBuffer).start).toBe(20);
    await device.write(x, 4, Float32Array.of(2, 3));
    expect(new Float32Array((await device.read(x, 0, 12)).buffer)).toEqual(Float32Array.of(0, 2, 3));
    expect(new Float32Array((x as HostBuffer).bytes, 0, 5)).toEqual(new Float32Array(5));

    // sqrt(exp(x)) with its intermediate in an arena, at offset 0 of its memory.
    const g = new Graph();
    const input = g.placeholder('float32', [3], 'x');
    const e = exp(input);
    const n = sqrt(e);
    const type = { dtype: 'float32', shape: [3] } as const;
    const sub = extractSubgraph(g, {
      nodes: [e.node.id, n.node.id],
      bind: new Map([[input.id, type]]),
      results: [n.id],
    }).subgraph;
    const layout = { order: [e.node.id, n.node.id], arenaBytes: 12, offsets: new Map([[e.id, 0]]) };
    const exe = device.compileSync(sub, { memory: layout });
    const y = device.allocate(12);
    exe.runSync([{ buffer: x, byteOffset: 0, ...type }], [{ buffer: y, byteOffset: 0, ...type }]);
    // exp: x's memory to the arena's; sqrt: the arena's to y's.
    expect(starts).toEqual([20, 20, 20, 20]);
    expect(Array.from(new Float32Array((await device.read(y, 0, 12)).buffer))).toEqual(
      [0, 2, 3].map((v) => Math.fround(Math.sqrt(Math.fround(Math.exp(v))))),
    );

    // A freed buffer comes back zeroed, its memory where it was.
    const bytes = (y as HostBuffer).bytes;
    device.free(y);
    const again = device.allocate(12) as HostBuffer;
    expect(again.bytes).toBe(bytes);
    expect(again.start).toBe(20);
    expect(new Float32Array((await device.read(again, 0, 12)).buffer)).toEqual(new Float32Array(3));
  });

  it('refuses to compile a node its table has no kernel for, naming the device and the op', () => {
    const { exp: _, ...partial } = REFERENCE_KERNELS;
    const device = new HostDevice({
      name: 'gap:0',
      kind: 'gap',
      kernels: partial as typeof REFERENCE_KERNELS,
    });
    expect(device.supports({ op: 'exp', attrs: {}, inputs: [], outputs: [] })).toEqual({
      ok: false,
      reason: 'no gap kernel for exp',
    });
    const sub = singleOpSubgraph('exp', [{ dtype: 'float32', shape: [2] }], {});
    expect(() => device.compileSync(sub)).toThrow(KilnError);
    expect(() => device.compileSync(sub)).toThrow(/gap:0 has no kernel for exp/);
  });
});
