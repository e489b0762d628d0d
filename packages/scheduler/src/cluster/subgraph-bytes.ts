import { deserializeGraph, KilnError, type Subgraph, serializeGraph } from '@kiln/ir';

/**
 * A partition's subgraph in the graph file format: its inputs are its placeholders in0, in1, ... in
 * node order (extractSubgraph names them so), its results the outputs r0, r1, ... So a worker gets
 * the same checked bytes a file would hold, and decodes them with the same hostile-input guards.
 */
export function subgraphToBytes(subgraph: Subgraph): Uint8Array {
  const outputs = Object.fromEntries(subgraph.results.map((v, i) => [`r${i}`, v]));
  return serializeGraph({ nodes: subgraph.nodes, values: subgraph.values, initializers: [], outputs });
}

export function subgraphFromBytes(bytes: Uint8Array): Subgraph {
  const graph = deserializeGraph(bytes);
  const inputs = graph.nodes
    .filter((n) => n.op === 'placeholder')
    .map((n) => {
      const index = /^in(0|[1-9]\d*)$/.exec(String(n.attrs.name))?.[1];
      if (index === undefined)
        throw new KilnError(
          'protocol',
          `partition: placeholder '${String(n.attrs.name)}' is not an input inN`,
        );
      return [Number(index), n.outputs[0]!] as const;
    })
    .sort((a, b) => a[0] - b[0]);
  inputs.forEach(([index], i) => {
    if (index !== i)
      throw new KilnError('protocol', `partition: inputs are not numbered in0..in${inputs.length - 1}`);
  });
  const results = Object.keys(graph.outputs).map((_, i) => {
    const v = graph.outputs[`r${i}`];
    if (v === undefined) throw new KilnError('protocol', `partition: results are not named r0..r${i}`);
    return v;
  });
  return { ...graph, inputs: inputs.map(([, v]) => v), results };
}
