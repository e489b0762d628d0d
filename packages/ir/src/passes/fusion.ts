import type { NodeQuery } from '../abi/device.js';
import type { DType } from '../dtype.js';
import type { GraphData, Node, NodeId, ValueId } from '../graph/graph.js';
import {
  type FusedStep,
  type FusibleOp,
  isFusibleOp,
  MAX_FUSED_INPUTS,
  MAX_FUSED_STEPS,
} from '../ops/fused.js';
import type { ConcreteType } from '../ops/op-def.js';
import { shapesEqual } from '../shape.js';
import { readersOf } from './readers.js';
import { copyNode, type GraphRewrite, graphRoots } from './regions.js';
import { GraphWriter, type PassResult } from './writer.js';

/** What fusion did. */
export interface FusionResult extends PassResult {
  /** Fusion groups made (each one `fused` node). */
  readonly groups: number;
  /** Elementwise nodes those groups replaced. */
  readonly fusedOps: number;
}

export interface FusionOptions {
  /** Smallest group worth a `fused` node. Default 2: a single op stays as it is. */
  readonly minGroupSize?: number;
  /**
   * The device's answer for a group's `fused` node (its `supports`, as a yes or no): a group it
   * declines keeps its ops, rather than being fused here and expanded back before compiling.
   */
  readonly accepts?: (node: NodeQuery) => boolean;
}

interface Stats {
  groups: number;
  fusedOps: number;
}

/**
 * Elementwise fusion: maximal connected sets of elementwise ops (every op a fusion program may
 * name, `where` and `cast` included) become one `fused` node that a device runs as a single loop.
 * A group grows from its last node towards its producers; a producer joins when its value has the
 * group's shape and nothing outside the group reads it (so intermediates never need memory, and
 * the group's only result is its last node's). Inputs of the group may broadcast. Groups are
 * found from the end of the graph backwards, so each is as large as these rules allow. Regions
 * are fused inside.
 */
export function fuseElementwise(graph: GraphData, options: FusionOptions = {}): FusionResult {
  const stats: Stats = { groups: 0, fusedOps: 0 };
  const result = run(graph, graphRoots(graph), stats, options.minGroupSize ?? 2, options.accepts);
  return { ...result, ...stats };
}

const isCandidate = (node: Node) => isFusibleOp(node.op) && node.outputs.length === 1;

function run(
  graph: GraphData,
  roots: readonly ValueId[],
  stats: Stats,
  minSize: number,
  accepts: FusionOptions['accepts'],
): PassResult {
  const groups = findGroups(graph, roots, minSize, accepts);
  const rootOf = new Map<NodeId, NodeId[]>();
  const member = new Set<NodeId>();
  for (const g of groups) {
    rootOf.set(g[g.length - 1]!, g);
    for (const id of g) member.add(id);
    stats.groups++;
    stats.fusedOps += g.length;
  }
  const w = new GraphWriter();
  const map = new Map<ValueId, ValueId>();
  const inner: GraphRewrite = (g, r) => run(g, r, stats, minSize, accepts);
  for (const node of graph.nodes) {
    const group = rootOf.get(node.id);
    if (group) {
      const [out] = emitGroup(w, graph, group, map);
      map.set(node.outputs[0]!, out!);
      continue;
    }
    if (member.has(node.id)) continue;
    copyNode(w, node, map, inner);
  }
  return { graph: w.graph(graph, map), valueMap: map };
}

/** Groups as ascending node ids, the group's root (its only value read outside) last. */
function findGroups(
  graph: GraphData,
  roots: readonly ValueId[],
  minSize: number,
  accepts: FusionOptions['accepts'],
): NodeId[][] {
  const { nodes, values } = graph;
  const users = readersOf(graph);
  const escapes = new Set(roots);
  const groupOf = new Int32Array(nodes.length).fill(-1);
  const groups: NodeId[][] = [];
  for (let id = nodes.length - 1; id >= 0; id--) {
    const root = nodes[id]!;
    if (groupOf[id] !== -1 || !isCandidate(root)) continue;
    const shape = values[root.outputs[0]!]!.type.shape;
    const tag = groups.length;
    const members = [id];
    groupOf[id] = tag;
    // Producers are decided from the highest id down: by then every user of one that could join
    // (all of them come later in the graph) has been decided.
    const frontier = new Set<NodeId>();
    const reach = (node: Node) => {
      for (const v of node.inputs) frontier.add(values[v]!.node);
    };
    reach(root);
    while (frontier.size > 0 && members.length < MAX_FUSED_STEPS) {
      const p = Math.max(...frontier);
      frontier.delete(p);
      const node = nodes[p]!;
      // A group runs as one kernel on one device, so it never spans two device scopes.
      if (groupOf[p] !== -1 || !isCandidate(node) || node.device !== root.device) continue;
      const out = node.outputs[0]!;
      if (escapes.has(out) || !shapesEqual(values[out]!.type.shape, shape)) continue;
      if (![...(users.get(out) ?? [])].every((u) => groupOf[u] === tag)) continue;
      groupOf[p] = tag;
      members.push(p);
      reach(node);
    }
    members.sort((a, b) => a - b);
    if (
      members.length >= minSize &&
      externalInputs(graph, members).length <= MAX_FUSED_INPUTS &&
      (!accepts || accepts(groupQuery(graph, members)))
    ) {
      groups.push(members);
    } else {
      // Not worth it (or too wide): the nodes stay as they are, and no later group can take them
      // (their users are decided).
      for (const m of members) groupOf[m] = -2;
    }
  }
  return groups;
}

/** Values the group reads from outside, in order of first use. */
function externalInputs(graph: GraphData, members: readonly NodeId[]): ValueId[] {
  const inside = new Set(members.map((id) => graph.nodes[id]!.outputs[0]!));
  const seen = new Set<ValueId>();
  for (const id of members) {
    for (const v of graph.nodes[id]!.inputs) if (!inside.has(v)) seen.add(v);
  }
  return [...seen];
}

/** A group's program: inputs are slots 0..n-1, the members' values the steps after. */
function groupProgram(
  graph: GraphData,
  members: readonly NodeId[],
): { inputs: ValueId[]; program: FusedStep[] } {
  const inputs = externalInputs(graph, members);
  const slot = new Map<ValueId, number>(inputs.map((v, i) => [v, i]));
  const program: FusedStep[] = members.map((id, k) => {
    const node = graph.nodes[id]!;
    const args = node.inputs.map((v) => slot.get(v)!);
    slot.set(node.outputs[0]!, inputs.length + k);
    if (node.op === 'cast') return ['cast', [args[0]!], node.attrs.dtype as DType];
    return [node.op as Exclude<FusibleOp, 'cast'>, args];
  });
  return { inputs, program };
}

/** The capability query of a group's `fused` node; unknown dimensions count as 1, as in placement. */
function groupQuery(graph: GraphData, members: readonly NodeId[]): NodeQuery {
  const { inputs, program } = groupProgram(graph, members);
  const concrete = (v: ValueId): ConcreteType => {
    const t = graph.values[v]!.type;
    return { dtype: t.dtype, shape: t.shape.map((d) => d ?? 1) };
  };
  const root = graph.nodes[members[members.length - 1]!]!;
  return {
    op: 'fused',
    attrs: { program, outputs: [inputs.length + members.length - 1] },
    inputs: inputs.map(concrete),
    outputs: [concrete(root.outputs[0]!)],
  };
}

/** The `fused` node of a group. */
function emitGroup(
  w: GraphWriter,
  graph: GraphData,
  members: readonly NodeId[],
  map: ReadonlyMap<ValueId, ValueId>,
): ValueId[] {
  const { inputs, program } = groupProgram(graph, members);
  const root = graph.nodes[members[members.length - 1]!]!;
  return w.add(
    'fused',
    inputs.map((v) => map.get(v)!),
    { program, outputs: [inputs.length + members.length - 1] },
    root.name,
    root.device,
  );
}
