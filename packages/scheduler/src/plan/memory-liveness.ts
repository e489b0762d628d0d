import {
  byteSizeOf,
  DTYPE_INFO,
  isConcrete,
  KilnError,
  type NodeId,
  opDef,
  type Subgraph,
  shapesEqual,
  type ValueId,
} from '@kiln/ir';

/** A span of steps, both ends included. */
export interface Lifetime {
  readonly start: number;
  readonly end: number;
}

/**
 * One arena buffer: an intermediate value, or a chain of values that an elementwise op wrote in
 * place of an input that died there. Its lifetime spans every member.
 */
export interface BufferGroup {
  readonly id: number;
  /** Members in production order; each after the first is written in place of the one before. */
  readonly values: ValueId[];
  readonly bytes: number;
  start: number;
  end: number;
}

export interface Liveness {
  readonly steps: ReadonlyMap<NodeId, number>;
  /** Lifetimes of every value the order computes, pinned ones included. */
  readonly lifetimes: ReadonlyMap<ValueId, Lifetime>;
  readonly pinned: ReadonlySet<ValueId>;
  readonly groups: readonly BufferGroup[];
  /** For a value written in place: the value whose buffer it took. */
  readonly inPlaceOf: ReadonlyMap<ValueId, ValueId>;
}

export const alignUp = (bytes: number, alignment: number): number => Math.ceil(bytes / alignment) * alignment;

export function valueBytes(subgraph: Subgraph, v: ValueId): number {
  const type = subgraph.values[v]?.type;
  if (!type) throw new KilnError('runtime', `memory plan: value %${v} does not exist`);
  if (!isConcrete(type.shape)) {
    throw new KilnError('shape', `memory plan: value %${v} has a shape that is not concrete`);
  }
  return byteSizeOf({ dtype: type.dtype, shape: type.shape });
}

/**
 * Values the arena never holds: what the caller binds and reads (subgraph inputs and results) and
 * what the executor owns (placeholders, variables, assigns), whose bytes outlive one run.
 */
export function pinnedValues(subgraph: Subgraph): Set<ValueId> {
  const pinned = new Set<ValueId>([...subgraph.inputs, ...subgraph.results]);
  for (const node of subgraph.nodes) {
    if (node.op === 'placeholder' || opDef(node.op).kind === 'state') {
      for (const v of node.outputs) pinned.add(v);
    }
  }
  return pinned;
}

/** Checks that `order` runs every node of the subgraph once, after the producers of its inputs. */
export function checkOrder(subgraph: Subgraph, order: readonly NodeId[]): Map<NodeId, number> {
  const steps = new Map<NodeId, number>();
  order.forEach((id, step) => {
    if (!subgraph.nodes[id]) throw new KilnError('invalid-argument', `memory plan: no node #${id}`);
    if (steps.has(id)) throw new KilnError('invalid-argument', `memory plan: node #${id} appears twice`);
    steps.set(id, step);
  });
  if (steps.size !== subgraph.nodes.length) {
    throw new KilnError(
      'invalid-argument',
      `memory plan: the order has ${steps.size} nodes, the subgraph ${subgraph.nodes.length}`,
    );
  }
  for (const node of subgraph.nodes) {
    const step = steps.get(node.id)!;
    for (const v of node.inputs) {
      const producer = subgraph.values[v]!.node;
      if (steps.get(producer)! >= step) {
        throw new KilnError(
          'invalid-argument',
          `memory plan: node #${node.id} runs before node #${producer}, which produces its input %${v}`,
        );
      }
    }
  }
  return steps;
}

/** A value lives from its producer's step to its last consumer's step (or just its own step). */
export function lifetimesFor(subgraph: Subgraph, steps: ReadonlyMap<NodeId, number>): Map<ValueId, Lifetime> {
  const lifetimes = new Map<ValueId, { start: number; end: number }>();
  for (const node of subgraph.nodes) {
    const step = steps.get(node.id)!;
    for (const v of node.outputs) lifetimes.set(v, { start: step, end: step });
  }
  for (const node of subgraph.nodes) {
    const step = steps.get(node.id)!;
    for (const v of node.inputs) {
      const life = lifetimes.get(v)!;
      life.end = Math.max(life.end, step);
    }
  }
  return lifetimes;
}

/**
 * Whether `output` of `node` may take the buffer of `input`: an elementwise op with one output
 * reads element i of each input before writing element i, so it may overwrite an input of the same
 * shape and element width (not a broadcast one) that nothing reads afterwards.
 */
function canReuse(subgraph: Subgraph, input: ValueId, output: ValueId): boolean {
  const a = subgraph.values[input]!.type;
  const b = subgraph.values[output]!.type;
  return shapesEqual(a.shape, b.shape) && DTYPE_INFO[a.dtype].bytes === DTYPE_INFO[b.dtype].bytes;
}

export function analyzeLiveness(
  subgraph: Subgraph,
  order: readonly NodeId[],
  alignment: number,
  pinned: ReadonlySet<ValueId>,
): Liveness {
  const steps = checkOrder(subgraph, order);
  const lifetimes = lifetimesFor(subgraph, steps);
  const groups: BufferGroup[] = [];
  const groupOf = new Map<ValueId, BufferGroup>();
  const inPlaceOf = new Map<ValueId, ValueId>();

  for (const id of order) {
    const node = subgraph.nodes[id]!;
    const step = steps.get(id)!;
    const inPlace = node.outputs.length === 1 && opDef(node.op).kind === 'elementwise';
    for (const v of node.outputs) {
      if (pinned.has(v)) continue;
      const life = lifetimes.get(v)!;
      const bytes = alignUp(valueBytes(subgraph, v), alignment);
      const donor = inPlace
        ? node.inputs.find((u) => {
            const g = groupOf.get(u);
            return (
              g !== undefined &&
              g.bytes === bytes &&
              lifetimes.get(u)!.end === step &&
              g.values[g.values.length - 1] === u &&
              canReuse(subgraph, u, v)
            );
          })
        : undefined;
      if (donor !== undefined && bytes > 0) {
        const g = groupOf.get(donor)!;
        g.values.push(v);
        g.end = Math.max(g.end, life.end);
        groupOf.set(v, g);
        inPlaceOf.set(v, donor);
        continue;
      }
      const g: BufferGroup = { id: groups.length, values: [v], bytes, start: life.start, end: life.end };
      groups.push(g);
      groupOf.set(v, g);
    }
  }
  return { steps, lifetimes, pinned, groups, inPlaceOf };
}

/** The largest total of buffer bytes live at one step: no arena can be smaller. */
export function peakLiveBytes(groups: readonly BufferGroup[], stepCount: number): number {
  const delta = new Array<number>(stepCount + 1).fill(0);
  for (const g of groups) {
    delta[g.start]! += g.bytes;
    delta[g.end + 1]! -= g.bytes;
  }
  let live = 0;
  let peak = 0;
  for (const d of delta) {
    live += d;
    peak = Math.max(peak, live);
  }
  return peak;
}
