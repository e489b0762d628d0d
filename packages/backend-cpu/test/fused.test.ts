import { CpuDevice, hasExpression, KERNELS } from '@kiln/backend-cpu';
import {
  type ConcreteType,
  type DType,
  extractSubgraph,
  FUSIBLE_OPS,
  fuseElementwise,
  Graph,
  type GraphData,
  type HostArray,
  optimize,
  Prng,
  randomFusedProgram,
  requiredNodes,
  tryBroadcastShapes,
  type ValueId,
} from '@kiln/ir';
import { generateInput, runOnDevice, singleOpSubgraph } from '@kiln/ir/conformance';
import { describe, expect, it } from 'vitest';

const device = new CpuDevice();
/** The ops the fused loop has expressions for; a group with another op runs op by op. */
const LOOP_OPS = (Object.keys(FUSIBLE_OPS) as (keyof typeof FUSIBLE_OPS)[]).filter(hasExpression);

/** Compiles the part of `g` that computes `results` from the values `inputs` and runs it on the CPU. */
async function runGraph(
  g: GraphData,
  inputs: readonly ValueId[],
  data: readonly HostArray[],
  results: readonly ValueId[],
): Promise<HostArray[]> {
  const bind = new Map(inputs.map((v) => [v, g.values[v]!.type as ConcreteType] as const));
  const bound = new Set(inputs.map((v) => g.values[v]!.node));
  const nodes = requiredNodes(g, results).filter((id) => !bound.has(id));
  const { subgraph } = extractSubgraph(g, { nodes, bind, results });
  return runOnDevice(device, subgraph, data);
}

const host = (dtype: DType, values: ArrayLike<number>): HostArray =>
  dtype === 'float32'
    ? Float32Array.from(values)
    : dtype === 'int32'
      ? Int32Array.from(values)
      : Uint8Array.from(values);

const bits = (a: HostArray) => Array.from(a, (x) => (Object.is(x, -0) ? '-0' : Number.isNaN(x) ? 'NaN' : x));

describe('the fused kernel', () => {
  it('computes bit for bit what the ops compute one by one, on random programs and broadcast shapes', async () => {
    const rng = new Prng(11);
    const shapes: [number[], number[], number[]][] = [
      [[4, 5], [5], []],
      [
        [2, 3, 4],
        [3, 1],
        [1, 1, 4],
      ],
      [[7], [1], [7]],
      [[3, 1, 2], [4, 1], [2]],
      [[0, 3], [3], []],
      [[], [], []],
    ];
    let checked = 0;
    for (let trial = 0; trial < 120; trial++) {
      const [s0, s1, s2] = shapes[trial % shapes.length]!;
      const dtypes: DType[] = ['float32', rng.pick<DType>(['float32', 'int32', 'bool']), 'float32'];
      const attrs = randomFusedProgram(rng, dtypes, rng.int(1, 12), LOOP_OPS);
      const g = new Graph();
      const ins = [s0, s1, s2].map((s, i) => g.placeholder(dtypes[i]!, s!, `in${i}`));
      const fused = g.apply('fused', ins, attrs as unknown as Record<string, unknown>);
      // The same program unfused, on inputs broadcast up front (elementwise ops commute with
      // broadcasting): each step then has the fused node's shape.
      const full = [s1!, s2!].reduce((a, b) => tryBroadcastShapes(a, b) as number[], s0!);
      const slots = ins.map((t) => g.apply('broadcastTo', [t], { shape: full })[0]!);
      for (const step of attrs.program) {
        const stepAttrs = step[0] === 'cast' ? { dtype: step[2] } : {};
        slots.push(
          g.apply(
            step[0],
            step[1].map((s) => slots[s]!),
            stepAttrs,
          )[0]!,
        );
      }
      const data = ins.map((t) =>
        host(
          t.type.dtype,
          generateInput(rng, {
            dtype: t.type.dtype,
            shape: t.shape as number[],
            domain: rng.bool(0.3) ? 'special' : 'normal',
          }).data,
        ),
      );
      const inIds = ins.map((t) => t.id);
      const got = await runGraph(
        g,
        inIds,
        data,
        fused.map((t) => t.id),
      );
      const want = await runGraph(
        g,
        inIds,
        data,
        attrs.outputs.map((o) => slots[o]!.id),
      );
      for (const [k, w] of want.entries()) {
        expect(bits(got[k]!), JSON.stringify(attrs)).toEqual(bits(w));
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(100);
  });

  it('runs an optimized chain as one kernel with the result of the unoptimized graph', async () => {
    const g = new Graph();
    const x = g.placeholder('float32', [64, 33], 'x');
    const b = g.placeholder('float32', [33], 'b');
    const y = x.mul(1.5).add(b).sigmoid().sub(x).tanh().mul(x.mul(x).neg().exp());
    g.output('y', y);
    const { graph, report, valueMap } = optimize(g);
    expect(graph.nodes.filter((n) => n.op === 'fused')).toHaveLength(1);
    expect(report.find((r) => r.pass === 'elementwise fusion')!.detail).toBe('1 group, 9 ops');
    const rng = new Prng(5);
    const data = [x, b].map((t) =>
      host(
        'float32',
        generateInput(rng, { dtype: 'float32', shape: t.shape as number[], domain: 'special' }).data,
      ),
    );
    const want = await runGraph(g, [x.id, b.id], data, [y.id]);
    const got = await runGraph(
      graph,
      [x.id, b.id].map((v) => valueMap.get(v)!),
      data,
      [graph.outputs.y!],
    );
    expect(bits(got[0]!)).toEqual(bits(want[0]!));
  });

  it('writes several outputs in one loop', async () => {
    const sub = singleOpSubgraph(
      'fused',
      [
        { dtype: 'float32', shape: [2, 3] },
        { dtype: 'float32', shape: [3] },
      ],
      {
        program: [
          ['add', [0, 1]],
          ['greater', [2, 0]],
          ['cast', [2], 'int32'],
        ],
        outputs: [4, 3, 2],
      },
    );
    const [i, c, s] = await runOnDevice(device, sub, [
      Float32Array.from([1.5, -2, 3, 0.25, 5, -6.5]),
      Float32Array.from([1, -1, 0.5]),
    ]);
    expect(Array.from(s!)).toEqual([2.5, -3, 3.5, 1.25, 4, -6]);
    expect(Array.from(c!)).toEqual([1, 0, 1, 1, 0, 1]);
    expect(Array.from(i!)).toEqual([2, -3, 3, 1, 4, -6]);
  });

  it('refuses attributes that did not go through the verifier', () => {
    const types = [{ dtype: 'float32' as const, shape: [2] }];
    const forged: Record<string, unknown>[] = [
      { program: [['constructor', [0]]], outputs: [1] },
      { program: [['neg', ['constructor']]], outputs: [1] },
      { program: [['neg', [0]]], outputs: ['constructor'] },
      { program: [['neg', [0]]], outputs: [0] },
      { program: [['cast', [0], 'toString']], outputs: [1] },
      { program: [['neg', [3]]], outputs: [1] },
    ];
    for (const attrs of forged) {
      expect(() => KERNELS.fused!({ attrs: attrs as never, inputs: types, outputs: types })).toThrow();
    }
  });

  it('keeps single-op graphs and unfusable ops on their own kernels', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [3], 'x');
    g.output('y', x.relu());
    expect(fuseElementwise(g).groups).toBe(0);
  });
});
