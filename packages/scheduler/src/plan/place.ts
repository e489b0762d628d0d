import {
  byteSizeOf,
  type ConcreteType,
  type Device,
  EXECUTOR_OPS,
  type GraphData,
  KilnError,
  type Node,
  type NodeId,
  type NodeQuery,
  supportWithExpansion,
  type TensorType,
  type ValueId,
} from '@kiln/ir';
import { UnionFind } from './union-find.js';

export interface PlaceOptions {
  /** User device scopes: the device each hinted node asks for, such as 'worker:1/cpu:0'. */
  readonly hints?: ReadonlyMap<NodeId, string>;
  /** Link speed the cost model charges for a tensor that crosses devices. */
  readonly bytesPerSecondBetweenDevices?: number;
}

/** Where each node runs, and why. */
export interface Placement {
  readonly device: Map<NodeId, string>;
  /** Hints that could not be honoured; one line per (requested, chosen) device pair. */
  readonly warnings: string[];
  /** Why each node went where it did: a hint, colocation, or the earliest-finish comparison. */
  readonly reasons: Map<NodeId, string>;
}

/** A modest interconnect (PCIe across a host, or a fast network): the placer needs ratios, not truth. */
export const DEFAULT_TRANSFER_BYTES_PER_SECOND = 1e9;

/** `#5 (matmul 'dense1/matmul')`: how placement messages name a node. */
export function nodeLabel(node: Pick<Node, 'id' | 'op' | 'name'>): string {
  return `#${node.id} (${node.op}${node.name ? ` '${node.name}'` : ''})`;
}

/** Node labels for a message: the first few, then how many more, so a huge group stays readable. */
export function nodeList(nodes: readonly Pick<Node, 'id' | 'op' | 'name'>[], shown = 8): string {
  const head = nodes.slice(0, shown).map(nodeLabel).join(', ');
  return nodes.length > shown ? `${head} and ${nodes.length - shown} more` : head;
}

/** Unknown dimensions count as 1: the placer only compares costs, and a batch of one is the floor. */
export function concreteForCost(type: TensorType): ConcreteType {
  return { dtype: type.dtype, shape: type.shape.map((d) => d ?? 1) };
}

export function formatSeconds(seconds: number): string {
  return `${(seconds * 1e3).toPrecision(3)}ms`;
}

interface Group {
  readonly members: readonly NodeId[];
  /** The device the group's hints ask for, and the hinted members. */
  readonly hint: string | undefined;
  readonly hinted: readonly NodeId[];
  /** Members a device must be able to run (everything except executor ops). */
  readonly compute: readonly NodeId[];
  /** The variable that anchors the group, for reasons. */
  readonly variable: NodeId | undefined;
  device: number;
}

interface FallbackWarning {
  readonly requested: string;
  readonly placed: string;
  readonly known: boolean;
  readonly nodes: NodeId[];
}

/**
 * Assigns every node to a device. Colocation first (a variable, its assigns and its readers form
 * one union-find group; an unhinted placeholder joins its first consumer), then hints (one per
 * group at most), then an earliest-finish-time greedy over the graph's topological order that
 * charges compute (each device's own estimate) and transfers (bytes over the link speed).
 */
export function place(graph: GraphData, devices: readonly Device[], options: PlaceOptions = {}): Placement {
  const devs = sortedDevices(devices);
  const names = devs.map((d) => d.name);
  const hints = options.hints ?? new Map<NodeId, string>();
  const bandwidth = options.bytesPerSecondBetweenDevices ?? DEFAULT_TRANSFER_BYTES_PER_SECOND;
  if (!(bandwidth > 0)) {
    throw new KilnError(
      'invalid-argument',
      `place: bytesPerSecondBetweenDevices must be > 0, got ${bandwidth}`,
    );
  }
  const nodes = graph.nodes;
  const count = nodes.length;
  nodes.forEach((n, i) => {
    if (n.id !== i) throw new KilnError('invalid-argument', `place: node at index ${i} has id ${n.id}`);
  });
  for (const id of [...hints.keys()].sort((a, b) => a - b)) {
    if (!nodes[id])
      throw new KilnError('invalid-argument', `place: a hint names node #${id}, not in the graph`);
  }

  const producer = (v: ValueId): NodeId => graph.values[v]!.node;
  const bytesOf = (v: ValueId): number => byteSizeOf(concreteForCost(graph.values[v]!.type));
  const consumers: NodeId[][] = graph.values.map(() => []);
  for (const n of nodes) for (const v of new Set(n.inputs)) consumers[v]!.push(n.id);

  // Capability: seconds per (node, device), NaN where the device declines.
  const k = devs.length;
  const seconds = new Float64Array(count * k);
  const declined = new Map<number, string>();
  for (const n of nodes) {
    if (EXECUTOR_OPS.has(n.op)) continue;
    const query = nodeQuery(graph, n);
    devs.forEach((d, j) => {
      // A device that declines a composite may still run its expansion (see expandComposites).
      const s = supportWithExpansion(d, query);
      if (s.ok && Number.isFinite(s.seconds) && s.seconds >= 0) seconds[n.id * k + j] = s.seconds;
      else {
        seconds[n.id * k + j] = Number.NaN;
        declined.set(n.id * k + j, s.ok ? `gave an invalid estimate (${s.seconds})` : s.reason);
      }
    });
  }
  const runs = (id: NodeId, j: number): boolean =>
    EXECUTOR_OPS.has(nodes[id]!.op) || !Number.isNaN(seconds[id * k + j]);

  // Colocation.
  const uf = new UnionFind(count);
  const variables = new Map<string, NodeId>();
  for (const n of nodes) if (n.op === 'variable') variables.set(String(n.attrs.name), n.id);
  for (const n of nodes) {
    if (n.op === 'variable') for (const v of n.outputs) for (const c of consumers[v]!) uf.union(n.id, c);
    if (n.op === 'assign') {
      const v = variables.get(String(n.attrs.variable));
      if (v !== undefined) uf.union(n.id, v);
    }
  }
  for (const n of nodes) {
    if (n.op !== 'placeholder' || hints.has(n.id)) continue;
    const first = Math.min(...n.outputs.flatMap((v) => consumers[v]!));
    if (Number.isFinite(first)) uf.union(n.id, first);
  }

  const groupOf = new Int32Array(count);
  const groups: Group[] = uf.groups().map((members, gi) => {
    for (const m of members) groupOf[m] = gi;
    const hinted = members.filter((m) => hints.has(m));
    const first = hinted[0];
    const hint = first === undefined ? undefined : hints.get(first);
    const other = hinted.find((m) => hints.get(m) !== hint);
    if (first !== undefined && other !== undefined) {
      throw new KilnError(
        'invalid-argument',
        `conflicting device hints in one colocation group: ${nodeLabel(nodes[first]!)} requests ${hint} but ` +
          `${nodeLabel(nodes[other]!)} requests ${hints.get(other)}; a variable stays on one device with the ` +
          `ops that read and assign it (group: ${nodeList(members.map((m) => nodes[m]!))})`,
      );
    }
    return {
      members,
      hint,
      hinted,
      compute: members.filter((m) => !EXECUTOR_OPS.has(nodes[m]!.op)),
      variable: members.find((m) => nodes[m]!.op === 'variable'),
      device: -1,
    };
  });

  const deviceOf = new Int32Array(count).fill(-1);
  const finish = new Float64Array(count).fill(Number.NaN);
  const visited = new Uint8Array(count);
  const ready = new Float64Array(k);
  const reasons = new Map<NodeId, string>();
  const fallbacks = new Map<string, FallbackWarning>();

  const arrival = (v: ValueId, j: number): number => {
    const p = producer(v);
    return finish[p]! + (deviceOf[p] === j ? 0 : bytesOf(v) / bandwidth);
  };

  const time = (id: NodeId): void => {
    const n = nodes[id]!;
    const j = deviceOf[id]!;
    let start = 0;
    for (const v of n.inputs) start = Math.max(start, arrival(v, j));
    if (EXECUTOR_OPS.has(n.op)) {
      finish[id] = start;
      return;
    }
    start = Math.max(start, ready[j]!);
    finish[id] = ready[j] = start + seconds[id * k + j]!;
  };

  /** Earliest finish of the whole group on each capable device, from what is placed so far. */
  const estimate = (g: Group, candidates: readonly number[]): number[] => {
    const inGroup = new Set(g.members);
    const external: ValueId[] = [];
    for (const m of g.members) {
      for (const v of nodes[m]!.inputs) {
        const p = producer(v);
        if (!inGroup.has(p) && !Number.isNaN(finish[p]!)) external.push(v);
      }
    }
    return candidates.map((j) => {
      let start = g.compute.length > 0 ? ready[j]! : 0;
      for (const v of external) start = Math.max(start, arrival(v, j));
      let total = 0;
      for (const m of g.compute) total += seconds[m * k + j]!;
      return start + total;
    });
  };

  const earliest = (g: Group, candidates: readonly number[]): { device: number; reason: string } => {
    const times = estimate(g, candidates);
    let best = 0;
    for (let i = 1; i < times.length; i++) if (times[i]! < times[best]!) best = i;
    const device = candidates[best]!;
    if (g.compute.length === 0 && times.every((t) => t === 0)) {
      return { device, reason: `no device work and no inputs: first device ${names[device]}` };
    }
    const others = candidates
      .map((j, i) => (i === best ? '' : `${names[j]} ${formatSeconds(times[i]!)}`))
      .filter((s) => s !== '');
    const incapable = names.filter((_, j) => !candidates.includes(j)).map((name) => `${name} cannot`);
    const versus = [...others, ...incapable];
    return {
      device,
      reason: `earliest finish: ${names[device]} ${formatSeconds(times[best]!)}${versus.length ? ` vs ${versus.join(', ')}` : ''}`,
    };
  };

  const impossible = (g: Group): KilnError => {
    for (const m of g.compute) {
      if (devs.every((_, j) => !runs(m, j))) {
        const why = names.map((name, j) => `${name}: ${declined.get(m * k + j)}`).join('; ');
        return new KilnError('unsupported', `no device can run ${nodeLabel(nodes[m]!)} (${why})`);
      }
    }
    const why = names
      .map((name, j) => {
        const m = g.compute.find((c) => !runs(c, j))!;
        return `${name} cannot run ${nodeLabel(nodes[m]!)} (${declined.get(m * k + j)})`;
      })
      .join('; ');
    return new KilnError(
      'unsupported',
      `no single device can run the colocation group ${nodeList(g.members.map((m) => nodes[m]!))}: ${why}`,
    );
  };

  const decide = (gi: number): void => {
    const g = groups[gi]!;
    const candidates = devs.map((_, j) => j).filter((j) => g.compute.every((m) => runs(m, j)));
    if (candidates.length === 0) throw impossible(g);
    let choice: { device: number; reason: string };
    const requested = g.hint === undefined ? -1 : names.indexOf(g.hint);
    if (g.hint !== undefined && candidates.includes(requested)) {
      choice = { device: requested, reason: `hint ${g.hint}` };
    } else {
      choice = earliest(g, candidates);
      if (g.hint !== undefined) {
        const known = requested >= 0;
        const listed = known ? g.compute.filter((m) => !runs(m, requested)) : [...g.hinted];
        const key = `${g.hint}\u0000${names[choice.device]}`;
        let w = fallbacks.get(key);
        if (!w)
          fallbacks.set(key, (w = { requested: g.hint, placed: names[choice.device]!, known, nodes: [] }));
        w.nodes.push(...listed);
        choice.reason = `hint ${g.hint} ${known ? 'cannot run it' : 'is not in the cluster'}; ${choice.reason}`;
      }
    }
    g.device = choice.device;
    const anchor = g.variable;
    for (const m of g.members) {
      deviceOf[m] = choice.device;
      const n = nodes[m]!;
      let reason = choice.reason;
      if (anchor !== undefined && m !== anchor && !(g.hint !== undefined && hints.get(m) === g.hint)) {
        reason = `colocated with variable '${String(nodes[anchor]!.attrs.name)}' (#${anchor}): ${choice.reason}`;
      } else if (anchor === undefined && n.op === 'placeholder' && !hints.has(m) && g.members.length > 1) {
        reason = `with its first consumer: ${choice.reason}`;
      }
      reasons.set(m, reason);
    }
    for (const m of g.members) if (visited[m]) time(m);
  };

  for (const n of nodes) {
    for (const v of n.inputs) {
      const gi = groupOf[producer(v)]!;
      if (groups[gi]!.device < 0) decide(gi);
    }
    visited[n.id] = 1;
    const g = groups[groupOf[n.id]!]!;
    if (g.device >= 0) time(n.id);
    else if (!EXECUTOR_OPS.has(n.op)) decide(groupOf[n.id]!);
  }
  groups.forEach((g, gi) => {
    if (g.device < 0) decide(gi);
  });

  const device = new Map<NodeId, string>();
  const orderedReasons = new Map<NodeId, string>();
  for (const n of nodes) {
    device.set(n.id, names[deviceOf[n.id]!]!);
    orderedReasons.set(n.id, reasons.get(n.id)!);
  }
  const warnings = [...fallbacks.values()]
    .map((w) => ({ ...w, nodes: [...new Set(w.nodes)].sort((a, b) => a - b) }))
    .sort((a, b) => a.nodes[0]! - b.nodes[0]! || (a.placed < b.placed ? -1 : 1))
    .map((w) => {
      const one = w.nodes.length === 1;
      const list = w.nodes.map((m) => nodeLabel(nodes[m]!)).join(', ');
      const why = w.known ? `which cannot run ${one ? 'it' : 'them'}` : 'which is not in the cluster';
      return `${one ? 'node' : 'nodes'} ${list} requested ${w.requested}, ${why}; placed on ${w.placed}`;
    });
  return { device, warnings, reasons: orderedReasons };
}

/** The capability query for a node, with unknown dimensions counted as 1. */
export function nodeQuery(graph: GraphData, node: Node): NodeQuery {
  return {
    op: node.op,
    attrs: node.attrs,
    inputs: node.inputs.map((v) => concreteForCost(graph.values[v]!.type)),
    outputs: node.outputs.map((v) => concreteForCost(graph.values[v]!.type)),
  };
}

function sortedDevices(devices: readonly Device[]): Device[] {
  if (devices.length === 0) throw new KilnError('invalid-argument', 'place: no devices to place on');
  const sorted = [...devices].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]!.name === sorted[i - 1]!.name) {
      throw new KilnError('invalid-argument', `place: two devices are named '${sorted[i]!.name}'`);
    }
  }
  return sorted;
}
