import {
  atNode,
  type ConcreteType,
  type Device,
  type Expansion,
  expandComposites,
  extractSubgraph,
  formatType,
  type GraphData,
  isConcrete,
  KilnError,
  type NodeId,
  opDef,
  optimize,
  type PassReport,
  passesFor,
  pruneToOutputs,
  type Subgraph,
  type SupportOracle,
  type TensorType,
  type ValueId,
} from '@kiln/ir';
import { type MemoryPlan, planMemory } from './memory.js';
import { formatMemoryPlan } from './memory-verify.js';
import { partition } from './partition.js';
import { type Placement, place } from './place.js';
import { UnionFind } from './union-find.js';

export interface PlanOptions {
  /** The values to compute. */
  readonly fetches: readonly ValueId[];
  /** Assign outputs to run for their effect (an optimizer's updates), as Session's targets. */
  readonly targets?: readonly ValueId[];
  /** Concrete types of the placeholders the fetches need. */
  readonly feeds: ReadonlyMap<ValueId, ConcreteType>;
  /** Device names for nodes, on top of the device scopes the nodes carry (`Graph.onDevice`). */
  readonly hints?: ReadonlyMap<NodeId, string>;
  readonly bytesPerSecondBetweenDevices?: number;
}

/** Where a partition's input comes from: a feed, a variable, or another partition. */
export type PartitionInput =
  /** `name` is the placeholder's or the variable's. */
  | { readonly kind: 'feed' | 'variable'; readonly value: ValueId; readonly name: string }
  | { readonly kind: 'recv'; readonly value: ValueId; readonly key: string; readonly from: string };

/**
 * Where a partition's result goes: to the caller, to other partitions, or into a variable of its
 * device once the partition has run (the variable's readers are colocated with its assigns).
 */
export type PartitionOutput =
  | { readonly kind: 'fetch'; readonly value: ValueId }
  | { readonly kind: 'assign'; readonly value: ValueId; readonly variable: string }
  | { readonly kind: 'send'; readonly value: ValueId; readonly keys: readonly string[] };

export interface PartitionPlan {
  readonly device: string;
  /** Partitions run in stage order; those of one stage on different devices may run at once. */
  readonly stage: number;
  /**
   * Which of the stage's independent parts on this device (0 where it has one): nodes of one
   * device and stage that share no value run as separate partitions, so each starts as soon as
   * its own inputs arrive rather than once all of them have.
   */
  readonly part: number;
  /** Concretely typed: inputs in `inputs` order, results in `outputs` order. */
  readonly subgraph: Subgraph;
  readonly inputs: readonly PartitionInput[];
  readonly outputs: readonly PartitionOutput[];
  readonly memory: MemoryPlan;
}

/**
 * A whole computation laid out for a cluster: the optimized graph, where each node runs and why,
 * one concretely typed subgraph per device with its memory plan, and the transfers between them.
 * Plain data (subgraphs serialize like any graph), so the same plan can run in this thread, on
 * workers or on remote nodes.
 */
export interface ExecutionPlan {
  readonly graph: GraphData;
  readonly optimizations: readonly PassReport[];
  readonly placement: ReadonlyMap<NodeId, { readonly device: string; readonly reason: string }>;
  readonly partitions: readonly PartitionPlan[];
  /** The fetches, in the caller's order, as values of `graph`. */
  readonly fetches: readonly ValueId[];
  readonly transfers: number;
  readonly warnings: readonly string[];
  /** Composites a device declined, which its partition runs as their decompositions. */
  readonly expansions: readonly PlannedExpansion[];
}

export interface PlannedExpansion extends Expansion {
  readonly device: string;
}

/** Answers yes only where every device does; the first refusal is the answer otherwise. */
function everyDevice(devices: readonly Device[]): SupportOracle {
  return {
    name: devices.map((d) => d.name).join(', '),
    supports(query) {
      let slowest = 0;
      for (const d of devices) {
        const s = d.supports(query);
        if (!s.ok) return s;
        slowest = Math.max(slowest, s.seconds);
      }
      return { ok: true, seconds: slowest };
    },
  };
}

function deviceNamed(devices: readonly Device[], name: string): Device {
  const device = devices.find((d) => d.name === name);
  if (!device)
    throw new KilnError('runtime', `plan: a partition was placed on ${name}, which is not a device here`);
  return device;
}

/**
 * plan = optimize → place → partition → memory plan per partition. Each step is its own tested
 * function; this composes them. Lowering (compiling each subgraph on its device, with its memory
 * layout) is the executor's job.
 */
export function plan(source: GraphData, devices: readonly Device[], options: PlanOptions): ExecutionPlan {
  // An assign's output is the value it stores: fetching it fetches that value.
  const stored = (v: ValueId) => {
    const node = source.nodes[source.values[v]!.node]!;
    return node.op === 'assign' ? node.inputs[0]! : v;
  };
  const targets = options.targets ?? [];
  for (const t of targets) {
    if (source.nodes[source.values[t]!.node]!.op !== 'assign')
      throw new KilnError('invalid-argument', `plan: target %${t} is not the output of an assign`);
  }
  const roots = Object.fromEntries([
    ...options.fetches.map((v, i) => [`fetch${i}`, stored(v)]),
    ...targets.map((v, i) => [`target${i}`, v]),
  ]);
  // Fusion runs before placement, so it asks every device: a group is fused only where any
  // device may get it, and a worker that declines `fused` is never sent one to expand back.
  const optimized = optimize(
    { ...source, initializers: [], outputs: roots },
    passesFor(everyDevice(devices)),
  );
  // Only what the fetches need: unused placeholders and variables are not part of this plan.
  const pruned = pruneToOutputs(optimized.graph);
  const graph = pruned.graph;
  const report = optimized.report;
  const at = (v: ValueId) => {
    const o = optimized.valueMap.get(v);
    const mapped = o === undefined ? undefined : pruned.valueMap.get(o);
    if (mapped === undefined)
      throw new KilnError('runtime', `plan: value %${v} did not survive optimization`);
    return mapped;
  };
  const fetches = options.fetches.map((v) => at(stored(v)));
  // Device scopes travel on the nodes through the passes (which never merge across devices);
  // explicit hints by node id come on top.
  const hints = new Map<NodeId, string>();
  for (const node of graph.nodes) if (node.device !== undefined) hints.set(node.id, node.device);
  for (const [node, device] of options.hints ?? []) {
    const out = source.nodes[node]?.outputs[0];
    const o = out === undefined ? undefined : optimized.valueMap.get(out);
    const mapped = o === undefined ? undefined : pruned.valueMap.get(o);
    if (mapped !== undefined) hints.set(graph.values[mapped]!.node, device);
  }
  const placement = place(graph, devices, {
    hints,
    ...(options.bytesPerSecondBetweenDevices === undefined
      ? {}
      : { bytesPerSecondBetweenDevices: options.bytesPerSecondBetweenDevices }),
  });
  const staged = splitIndependent(graph, stagePlacement(graph, placement));
  const parts = partition(graph, staged);
  const feedTypes = new Map([...options.feeds].map(([v, t]) => [at(v), t]));
  const fetchSet = new Set(fetches);
  const concrete = concreteTypes(graph, feedTypes);

  const expansions: PlannedExpansion[] = [];
  const partitions = [...parts.partitions].map(([unit, p]): PartitionPlan => {
    const { device, stage, part } = parseUnit(unit);
    const inputs: PartitionInput[] = [];
    const bind = new Map<ValueId, ConcreteType>();
    for (const id of p.nodes) {
      const node = graph.nodes[id]!;
      if (node.op !== 'placeholder' && node.op !== 'variable') continue;
      const v = node.outputs[0]!;
      const type = node.op === 'placeholder' ? feedTypes.get(v) : (graph.values[v]!.type as ConcreteType);
      if (!type)
        throw new KilnError('feed', `plan: no concrete type for placeholder '${String(node.attrs.name)}'`);
      bind.set(v, type);
      const name = String(node.attrs.name);
      inputs.push({ kind: node.op === 'placeholder' ? 'feed' : 'variable', value: v, name });
    }
    for (const r of p.recvs) {
      bind.set(r.value, concrete.get(r.value)!);
      inputs.push({ kind: 'recv', value: r.value, key: r.key, from: r.from });
    }
    const sendKeys = new Map<ValueId, string[]>();
    for (const s of p.sends) sendKeys.set(s.value, [...(sendKeys.get(s.value) ?? []), s.key]);
    const produced = new Set(p.nodes.flatMap((id) => graph.nodes[id]!.outputs));
    const assigns = p.nodes.map((id) => graph.nodes[id]!).filter((n) => n.op === 'assign');
    const outputs: PartitionOutput[] = [
      ...[...sendKeys].map(([value, keys]): PartitionOutput => ({ kind: 'send', value, keys })),
      ...fetches
        .filter((v) => produced.has(v) && !sendKeys.has(v))
        .map((value): PartitionOutput => ({ kind: 'fetch', value })),
      ...assigns.map(
        (n): PartitionOutput => ({ kind: 'assign', value: n.inputs[0]!, variable: String(n.attrs.variable) }),
      ),
    ];
    const extracted = extractSubgraph(graph, {
      nodes: p.nodes.filter((id) => !bind.has(graph.nodes[id]!.outputs[0]!)),
      bind,
      results: outputs.map((o) => o.value),
      // Readers of an assign's output read the value it stores.
      aliases: new Map(assigns.map((n) => [n.outputs[0]!, n.inputs[0]!])),
    }).subgraph;
    // What the device declines becomes its decomposition now, before the memory plan, so the
    // layout the worker gets is the layout of what it compiles.
    const { subgraph, expansions: expanded } = expandComposites(extracted, deviceNamed(devices, device));
    for (const e of expanded) expansions.push({ device, ...e });
    return { device, stage, part, subgraph, inputs, outputs, memory: planMemory(subgraph) };
  });
  for (const v of fetchSet) {
    if (!partitions.some((p) => p.outputs.some((o) => o.value === v))) {
      throw new KilnError('runtime', `plan: fetch %${v} is computed by no partition`);
    }
  }
  const placementInfo = new Map(
    [...staged.device].map(([node, unit]) => [
      node,
      { device: parseUnit(unit).device, reason: staged.reasons.get(node) ?? '' },
    ]),
  );
  partitions.sort(
    (a, b) =>
      a.stage - b.stage || (a.device < b.device ? -1 : a.device > b.device ? 1 : 0) || a.part - b.part,
  );
  checkAssignsComeLast(partitions);
  // Only edges between devices move bytes; edges between stages of one device are handovers.
  const transfers = partitions.reduce(
    (n, p) => n + p.inputs.filter((i) => i.kind === 'recv' && parseUnit(i.from).device !== p.device).length,
    0,
  );
  return {
    graph,
    optimizations: report,
    placement: placementInfo,
    partitions,
    fetches,
    transfers,
    warnings: placement.warnings,
    expansions,
  };
}

/** The plan as a person reads it: each node's device and why, each partition's memory, transfers. */
export function formatPlan(p: ExecutionPlan): string {
  const lines: string[] = [];
  for (const r of p.optimizations)
    lines.push(
      `pass ${r.pass}: ${r.nodesBefore} -> ${r.nodesAfter} nodes${r.detail ? ` (${r.detail})` : ''}`,
    );
  for (const [id, { device, reason }] of [...p.placement].sort(([a], [b]) => a - b)) {
    const node = p.graph.nodes[id]!;
    const types = node.outputs.map((v) => formatType(p.graph.values[v]!.type)).join(', ');
    lines.push(
      `#${id} ${node.op}${node.name ? ` '${node.name}'` : ''} : ${types} -> ${device}${reason ? `  (${reason})` : ''}`,
    );
  }
  for (const part of p.partitions) {
    const ins = part.inputs.map((i) =>
      i.kind === 'recv' ? `recv %${i.value} from ${i.from}` : `${i.kind} %${i.value}`,
    );
    const outs = part.outputs.map((o) =>
      o.kind === 'send'
        ? `send %${o.value} (${o.keys.length})`
        : o.kind === 'assign'
          ? `assign %${o.value} to '${o.variable}'`
          : `fetch %${o.value}`,
    );
    lines.push(
      `partition ${part.device} stage ${part.stage}${part.part > 0 ? ` part ${part.part}` : ''}: ${part.subgraph.nodes.length} nodes; in: ${ins.join(', ') || '-'}; out: ${outs.join(', ') || '-'}`,
    );
    lines.push(`  memory: ${formatMemoryPlan(part.memory).split('\n')[0]}`);
  }
  lines.push(`transfers: ${p.transfers}`);
  for (const w of p.warnings) lines.push(`warning: ${w}`);
  return lines.join('\n');
}

/**
 * Makes the partitions acyclic. Placement alone can make device A need a result of device B that
 * itself needs one of A's, which whole-partition executables could never run. A node's stage is
 * the largest of its inputs' stages, plus one for an input on another device; grouping by
 * (device, stage) then only ever sends forward. Constants first move to their first consumer's
 * device, since copying them is free and transferring them is not.
 */
function stagePlacement(graph: GraphData, placement: Placement): Placement {
  const device = new Map(placement.device);
  for (const node of graph.nodes) {
    if (node.op !== 'constant') continue;
    const consumer = graph.nodes.find((n) => n.inputs.includes(node.outputs[0]!));
    if (consumer) device.set(node.id, device.get(consumer.id)!);
  }
  const stageOf = new Map<ValueId, number>();
  const staged = new Map<NodeId, string>();
  for (const node of graph.nodes) {
    const here = device.get(node.id)!;
    let stage = 0;
    for (const v of node.inputs) {
      const producer = graph.values[v]!.node;
      stage = Math.max(stage, stageOf.get(v)! + (device.get(producer) === here ? 0 : 1));
    }
    for (const v of node.outputs) stageOf.set(v, stage);
  }
  // Sources (placeholders, variables, constants) join the stage that consumes them: the latest
  // stage that still keeps every edge out of them going forward. A variable is read no later than
  // the stage that assigns it, so every reader sees the value the run started with.
  for (const node of graph.nodes) {
    if (node.inputs.length > 0) continue;
    let latest = Infinity;
    for (const consumer of graph.nodes) {
      const assigns =
        node.op === 'variable' && consumer.op === 'assign' && consumer.attrs.variable === node.attrs.name;
      if (!assigns && !consumer.inputs.some((v) => node.outputs.includes(v))) continue;
      const cross = device.get(consumer.id) === device.get(node.id) ? 0 : 1;
      latest = Math.min(latest, (stageOf.get(consumer.outputs[0]!) ?? 0) - cross);
    }
    if (Number.isFinite(latest)) for (const v of node.outputs) stageOf.set(v, Math.max(0, latest));
  }
  for (const node of graph.nodes)
    staged.set(node.id, unitName(device.get(node.id)!, stageOf.get(node.outputs[0]!) ?? 0, 0));
  const reasons = new Map(placement.reasons);
  for (const node of graph.nodes) {
    if (node.op === 'constant' && device.get(node.id) !== placement.device.get(node.id))
      reasons.set(node.id, 'a constant, copied to its consumer');
  }
  return { ...placement, device: staged, reasons };
}

/** A partition's name while planning: device, stage and part, as `device#stage#part`. */
const unitName = (device: string, stage: number, part: number) => `${device}#${stage}#${part}`;

/** The device, stage and part a unit name holds (device names hold no '#'). */
export function parseUnit(unit: string): { device: string; stage: number; part: number } {
  const [device, stage, part] = unit.split('#') as [string, string, string?];
  return { device, stage: Number(stage), part: Number(part ?? 0) };
}

/**
 * Splits each device's stage into its independent parts: nodes joined by a value passed between
 * them stay together, as do a variable and its assigns (so every read in a run sees the value the
 * run started with), and each part becomes a partition of its own. A stage that receives many
 * values (the pieces of an all-reduce) then runs each part as soon as its own values have come,
 * while the rest are still on the wire, instead of waiting for the last. Parts are numbered in
 * graph order.
 */
function splitIndependent(graph: GraphData, placement: Placement): Placement {
  const unitOf = (id: NodeId) => placement.device.get(id)!;
  const uf = new UnionFind(graph.nodes.length);
  const variableNode = new Map<string, NodeId>();
  for (const node of graph.nodes)
    if (node.op === 'variable') variableNode.set(`${unitOf(node.id)}/${String(node.attrs.name)}`, node.id);
  for (const node of graph.nodes) {
    for (const v of node.inputs) {
      const producer = graph.values[v]!.node;
      if (unitOf(producer) === unitOf(node.id)) uf.union(producer, node.id);
    }
    if (node.op === 'assign') {
      const variable = variableNode.get(`${unitOf(node.id)}/${String(node.attrs.variable)}`);
      if (variable !== undefined) uf.union(variable, node.id);
    }
  }
  // Parts per unit, numbered by their first node in graph order.
  const parts = new Map<string, Map<number, number>>();
  const device = new Map<NodeId, string>();
  for (const node of graph.nodes) {
    const unit = unitOf(node.id);
    const numbers = parts.get(unit) ?? new Map<number, number>();
    parts.set(unit, numbers);
    const root = uf.find(node.id);
    if (!numbers.has(root)) numbers.set(root, numbers.size);
    const { device: name, stage } = parseUnit(unit);
    device.set(node.id, unitName(name, stage, numbers.get(root)!));
  }
  return { ...placement, device };
}

/**
 * A worker stores a partition's assigns when the partition finishes, so a variable bound by a later
 * stage of the same run would see the new value, not the one the run started with. Staging binds
 * every variable no later than its assigns, so this cannot happen; the check keeps it that way.
 */
function checkAssignsComeLast(partitions: readonly PartitionPlan[]): void {
  for (const writer of partitions) {
    for (const out of writer.outputs) {
      if (out.kind !== 'assign') continue;
      const reader = partitions.find(
        (p) =>
          p.stage > writer.stage && p.inputs.some((i) => i.kind === 'variable' && i.name === out.variable),
      );
      if (reader) {
        throw new KilnError(
          'invalid-argument',
          `plan: variable '${out.variable}' is assigned in stage ${writer.stage} on ${writer.device} but read again in stage ${reader.stage}; split the run so reads come before the update`,
        );
      }
    }
  }
}

/**
 * Every value's type for these feeds: graphs declare unknown batch sizes, but a partition receives
 * concrete tensors, so the types are inferred again from the fed shapes, in graph order.
 */
function concreteTypes(
  graph: GraphData,
  feeds: ReadonlyMap<ValueId, ConcreteType>,
): Map<ValueId, ConcreteType> {
  const types = new Map<ValueId, ConcreteType>();
  for (const node of graph.nodes) {
    let outs: TensorType[];
    if (node.op === 'placeholder') {
      const fed = feeds.get(node.outputs[0]!);
      outs = [fed ?? graph.values[node.outputs[0]!]!.type];
    } else if (node.inputs.every((v) => types.has(v))) {
      try {
        outs = opDef(node.op).infer(
          node.inputs.map((v) => types.get(v)!),
          node.attrs,
        );
      } catch (e) {
        throw atNode(node, e);
      }
    } else continue;
    outs.forEach((t, k) => {
      if (isConcrete(t.shape)) types.set(node.outputs[k]!, t as ConcreteType);
    });
  }
  return types;
}
