import type { NodeQuery } from '../abi/device.js';
import type { DType } from '../dtype.js';
import type { GraphData, Node, NodeId, ValueId } from '../graph/graph.js';
import { type FusedStep, isFusibleOp } from '../ops/fused.js';
import type { ConcreteType } from '../ops/op-def.js';
import { shapesEqual } from '../shape.js';
import { readersOf } from './readers.js';
import { copyNode, type GraphRewrite, graphRoots } from './regions.js';
import { GraphWriter, type PassResult } from './writer.js';

/** What epilogue fusion did. */
export interface MatmulEpilogueResult extends PassResult {
  /** Products fused with the elementwise work after them (each one `fusedMatmul` node). */
  readonly fused: number;
}

export interface MatmulEpilogueOptions {
  /**
   * The device's answer for a candidate's `fusedMatmul` node (its `supports`, as a yes or no). Only
   * a device that claims the node gains anything (its GEMM takes the epilogue, or it runs the
   * epilogue over the output in place), so nothing is fused without it.
   */
  readonly accepts: (node: NodeQuery) => boolean;
}

/** A matmul to absorb into the elementwise node that reads its product. */
interface Absorb {
  readonly matmul: Node;
  /** The elementwise node's inputs but the product, in order: the epilogue's slots 1, 2, ... */
  readonly others: readonly ValueId[];
  readonly program: readonly FusedStep[];
}

/**
 * Epilogue fusion, after elementwise fusion: a matmul whose product only one elementwise node reads
 * (a `fused` group or a single op, such as the bias add and activation of a dense layer) becomes
 * one `fusedMatmul` node with that node's program as its epilogue, where the device accepts it.
 * The product must have the elementwise node's shape (an epilogue never broadcasts it), and a
 * product something else reads too (a gradient, an output) stays a matmul. Regions are fused inside.
 */
export function fuseMatmulEpilogues(graph: GraphData, options: MatmulEpilogueOptions): MatmulEpilogueResult {
  const stats = { fused: 0 };
  const result = run(graph, graphRoots(graph), stats, options.accepts);
  return { ...result, ...stats };
}

function run(
  graph: GraphData,
  roots: readonly ValueId[],
  stats: { fused: number },
  accepts: MatmulEpilogueOptions['accepts'],
): PassResult {
  const found = findAbsorbed(graph, roots, accepts);
  const absorbed = new Set([...found.values()].map((a) => a.matmul.id));
  stats.fused += found.size;
  const w = new GraphWriter();
  const map = new Map<ValueId, ValueId>();
  const inner: GraphRewrite = (g, r) => run(g, r, stats, accepts);
  for (const node of graph.nodes) {
    if (absorbed.has(node.id)) continue;
    const absorb = found.get(node.id);
    if (absorb) {
      const { matmul, others, program } = absorb;
      const [out] = w.add(
        'fusedMatmul',
        [...matmul.inputs, ...others].map((v) => map.get(v)!),
        { transposeA: matmul.attrs.transposeA, transposeB: matmul.attrs.transposeB, program },
        node.name,
        node.device,
      );
      map.set(node.outputs[0]!, out!);
      continue;
    }
    copyNode(w, node, map, inner);
  }
  return { graph: w.graph(graph, map), valueMap: map };
}

/** The elementwise nodes that take a matmul in, by node id. */
function findAbsorbed(
  graph: GraphData,
  roots: readonly ValueId[],
  accepts: MatmulEpilogueOptions['accepts'],
): Map<NodeId, Absorb> {
  const readers = readersOf(graph);
  const escapes = new Set(roots);
  const found = new Map<NodeId, Absorb>();
  for (const node of graph.nodes) {
    const epilogue = asProgram(node);
    if (!epilogue) continue;
    const shape = graph.values[node.outputs[0]!]!.type.shape;
    for (const [slot, v] of epilogue.inputs.entries()) {
      const producer = graph.nodes[graph.values[v]!.node]!;
      if (
        producer.op !== 'matmul' ||
        producer.device !== node.device ||
        escapes.has(v) ||
        readers.get(v)!.size !== 1 ||
        !shapesEqual(graph.values[v]!.type.shape, shape)
      )
        continue;
      const absorb = {
        matmul: producer,
        others: epilogue.inputs.filter((_, i) => i !== slot),
        program: withProductFirst(epilogue.program, slot),
      };
      if (accepts(query(graph, node, absorb))) {
        found.set(node.id, absorb);
        break;
      }
    }
  }
  return found;
}

/**
 * An elementwise node as a program over its distinct inputs, its result the last step: a `fused`
 * node as it is (where its one output is its last step), a single fusible op as a program of one.
 */
function asProgram(node: Node): { inputs: ValueId[]; program: readonly FusedStep[] } | undefined {
  if (node.outputs.length !== 1) return undefined;
  if (node.op === 'fused') {
    const program = node.attrs.program as readonly FusedStep[];
    const outputs = node.attrs.outputs as readonly number[];
    if (outputs[0] !== node.inputs.length + program.length - 1) return undefined;
    return { inputs: [...node.inputs], program };
  }
  if (!isFusibleOp(node.op)) return undefined;
  const inputs = [...new Set(node.inputs)];
  const args = node.inputs.map((v) => inputs.indexOf(v));
  const step: FusedStep =
    node.op === 'cast' ? ['cast', [args[0]!], node.attrs.dtype as DType] : [node.op, args];
  return { inputs, program: [step] };
}

/** The program with input `slot` moved to slot 0 and the inputs before it one slot up. */
function withProductFirst(program: readonly FusedStep[], slot: number): FusedStep[] {
  const move = (s: number) => (s === slot ? 0 : s < slot ? s + 1 : s);
  return program.map((step) =>
    step[0] === 'cast' ? ['cast', [move(step[1][0])], step[2]] : [step[0], step[1].map(move)],
  );
}

/** The capability query of the `fusedMatmul` node; unknown dimensions count as 1, as in placement. */
function query(graph: GraphData, node: Node, absorb: Absorb): NodeQuery {
  const concrete = (v: ValueId): ConcreteType => {
    const t = graph.values[v]!.type;
    return { dtype: t.dtype, shape: t.shape.map((d) => d ?? 1) };
  };
  const { matmul, others, program } = absorb;
  return {
    op: 'fusedMatmul',
    attrs: { transposeA: matmul.attrs.transposeA, transposeB: matmul.attrs.transposeB, program },
    inputs: [...matmul.inputs, ...others].map(concrete),
    outputs: [concrete(node.outputs[0]!)],
  };
}
