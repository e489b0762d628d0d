import { formatType, type GraphData, KilnError, type NodeId, type ValueId } from '@kiln/ir';
import { nodeLabel, type Placement } from './place.js';

export interface Send {
  readonly value: ValueId;
  readonly to: string;
  /** Names the transfer on both sides: `${value}:${from}->${to}`. */
  readonly key: string;
}

export interface Recv {
  readonly value: ValueId;
  readonly from: string;
  readonly key: string;
}

/** One device's share of the graph. */
export interface DevicePartition {
  /** In graph order, which keeps stateful ops (colocated on one device) in program order. */
  readonly nodes: NodeId[];
  readonly sends: Send[];
  readonly recvs: Recv[];
}

export interface Partitioned {
  /** Keyed by device name, in name order. */
  readonly partitions: Map<string, DevicePartition>;
  /** Number of send/recv pairs: one per (value, destination device). */
  readonly transfers: number;
}

export function transferKey(value: ValueId, from: string, to: string): string {
  return `${value}:${from}->${to}`;
}

const byName = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Cuts a placed graph into per-device partitions. Each edge that crosses devices becomes a
 * send/recv pair, once per (value, destination) however many consumers the destination holds, as
 * TensorFlow's graph_partition does. The IR has no separate control edges: ordering between
 * stateful ops comes from graph order, and the placer keeps a variable and its assigns on one
 * device, so each partition keeps its nodes in graph order and nothing is lost at the cut.
 */
export function partition(graph: GraphData, placement: Placement): Partitioned {
  const deviceOf = (id: NodeId): string => {
    const d = placement.device.get(id);
    if (d === undefined) {
      throw new KilnError('invalid-argument', `partition: ${nodeLabel(graph.nodes[id]!)} has no device`);
    }
    return d;
  };
  const devices = [...new Set(graph.nodes.map((n) => deviceOf(n.id)))].sort(byName);
  const partitions = new Map<string, DevicePartition>();
  for (const d of devices) partitions.set(d, { nodes: [], sends: [], recvs: [] });

  const seen = new Set<string>();
  let transfers = 0;
  for (const n of graph.nodes) {
    const to = deviceOf(n.id);
    const part = partitions.get(to)!;
    part.nodes.push(n.id);
    for (const v of n.inputs) {
      const from = deviceOf(graph.values[v]!.node);
      if (from === to) continue;
      const key = transferKey(v, from, to);
      if (seen.has(key)) continue;
      seen.add(key);
      transfers++;
      partitions.get(from)!.sends.push({ value: v, to, key });
      part.recvs.push({ value: v, from, key });
    }
  }
  for (const p of partitions.values()) {
    p.nodes.sort((a, b) => a - b);
    p.sends.sort((a, b) => a.value - b.value || byName(a.to, b.to));
    p.recvs.sort((a, b) => a.value - b.value || byName(a.from, b.from));
  }
  return { partitions, transfers };
}

/**
 * A readable plan: one line per node with its device and why, then the transfers and warnings.
 *
 *     #5 matmul 'dense1/matmul' -> cpu:1 (earliest finish: cpu:1 0.120ms vs cpu:0 0.500ms)
 */
export function formatPlacement(graph: GraphData, placement: Placement, partitioned?: Partitioned): string {
  const lines: string[] = [];
  for (const n of graph.nodes) {
    const name = n.name ? ` '${n.name}'` : '';
    const reason = placement.reasons.get(n.id);
    lines.push(
      `#${n.id} ${n.op}${name} -> ${placement.device.get(n.id) ?? '?'}${reason ? ` (${reason})` : ''}`,
    );
  }
  if (partitioned) {
    lines.push(`transfers: ${partitioned.transfers}`);
    for (const [device, p] of partitioned.partitions) {
      for (const s of p.sends) {
        const value = graph.values[s.value]!;
        const from = nodeLabel(graph.nodes[value.node]!);
        lines.push(`  v${s.value} ${formatType(value.type)} from ${from}: ${device} -> ${s.to}`);
      }
    }
  }
  for (const w of placement.warnings) lines.push(`warning: ${w}`);
  return lines.join('\n');
}
