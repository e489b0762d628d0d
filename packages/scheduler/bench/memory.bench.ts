/**
 * Memory planning on real training steps: the MNIST MLP (784-256-256-10) and the small CNN of
 * examples/mnist, batch 128, forward + backward + Adam update, optimized as a Session compiles
 * them. For each: the planned arena, the lower bound (the largest set of intermediates live at
 * once) and the total without reuse. Goal: arena within 10% of the lower bound and under half of
 * no reuse. Sizes are exact, not timings: the same on every machine.
 *
 *   npm run bench:memory -w packages/scheduler
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import {
  Adam,
  add,
  type ConcreteType,
  conv2d,
  extractSubgraph,
  Graph,
  heNormal,
  matmul,
  maxPool,
  mean,
  optimize,
  relu,
  requiredNodes,
  reshape,
  type SymbolicTensor,
  softmaxCrossEntropy,
  tensor,
  type ValueId,
} from '@kiln/ir';
import { formatMemoryPlan, planMemory, planRun } from '@kiln/scheduler';

const BATCH = 128;

function dense(g: Graph, x: SymbolicTensor, units: number, seed: number, name: string) {
  return g.scope(name, () => {
    const w = g.variable('w', heNormal(g, [x.shape[1] as number, units], { seed }));
    const b = g.variable('b', tensor(g, new Array(units).fill(0), [units]));
    return add(matmul(x, w), b);
  });
}

function conv(g: Graph, x: SymbolicTensor, filters: number, seed: number, name: string) {
  return g.scope(name, () => {
    const w = g.variable('w', heNormal(g, [3, 3, x.shape[3] as number, filters], { seed }));
    const b = g.variable('b', tensor(g, new Array(filters).fill(0), [filters]));
    return relu(add(conv2d(x, w, { padding: 'same' }), b));
  });
}

function model(kind: 'mlp' | 'cnn') {
  const g = new Graph();
  const x = g.placeholder('float32', [BATCH, 784], 'x');
  const y = g.placeholder('float32', [BATCH, 10], 'y');
  let logits: SymbolicTensor;
  if (kind === 'mlp') {
    logits = dense(g, relu(dense(g, relu(dense(g, x, 256, 1, 'd1')), 256, 2, 'd2')), 10, 3, 'd3');
  } else {
    const c1 = maxPool(conv(g, reshape(x, [BATCH, 28, 28, 1]), 16, 11, 'c1'), { windowSize: 2 });
    const c2 = maxPool(conv(g, c1, 32, 12, 'c2'), { windowSize: 2 });
    logits = dense(g, reshape(c2, [BATCH, 7 * 7 * 32]), 10, 13, 'd');
  }
  const loss = mean(softmaxCrossEntropy(logits, y));
  return { g, loss, train: new Adam({ learningRate: 1e-3 }).minimize(loss) };
}

/** The step's subgraph as a Session compiles it: optimized, feeds and variables bound as inputs. */
function trainingStep(kind: 'mlp' | 'cnn') {
  const { g, loss, train } = model(kind);
  const ids = [loss.id, ...train.map((t) => t.id)];
  const run = planRun(g, ids);
  const roots = [...ids, ...run.assigns.map((n) => n.inputs[0]!)].map((v) => run.aliases.get(v) ?? v);
  const { graph, valueMap } = optimize({
    ...g,
    outputs: Object.fromEntries(roots.map((v, i) => [`r${i}`, v])),
  });
  const at = (v: ValueId) => valueMap.get(v)!;
  const bound = [...run.placeholders, ...run.variables].map((n) => at(n.outputs[0]!));
  const bind = new Map<ValueId, ConcreteType>(bound.map((v) => [v, graph.values[v]!.type as ConcreteType]));
  const results = [...new Set(roots.map(at))];
  const aliases = new Map(
    graph.nodes.filter((n) => n.op === 'assign').map((n) => [n.outputs[0]!, n.inputs[0]!]),
  );
  return extractSubgraph(graph, { nodes: requiredNodes(graph, results), bind, results, aliases }).subgraph;
}

const rows = (['mlp', 'cnn'] as const).map((kind) => {
  const subgraph = trainingStep(kind);
  const plan = planMemory(subgraph);
  console.log(
    `\n${kind.toUpperCase()} training step, batch ${BATCH}: ${subgraph.nodes.length} nodes\n${formatMemoryPlan(plan)}`,
  );
  return {
    model: kind === 'mlp' ? 'MLP 784-256-256-10' : 'CNN conv16-conv32-dense10',
    arenaBytes: plan.arenaBytes,
    lowerBound: plan.lowerBound,
    noReuseBytes: plan.noReuseBytes,
    overLowerBound: plan.arenaBytes / plan.lowerBound,
    ofNoReuse: plan.arenaBytes / plan.noReuseBytes,
  };
});

const mib = (b: number) => `${(b / 2 ** 20).toFixed(2)} MiB`;
console.log(
  '\n| training step (batch 128) | arena | lower bound | no reuse | arena / lower bound | arena / no reuse |',
);
console.log(
  '| ------------------------- | ----: | ----------: | -------: | ------------------: | ---------------: |',
);
for (const r of rows) {
  console.log(
    `| ${r.model} | ${mib(r.arenaBytes)} | ${mib(r.lowerBound)} | ${mib(r.noReuseBytes)} | ${r.overLowerBound.toFixed(3)} | ${r.ofNoReuse.toFixed(3)} |`,
  );
}
const met = rows.every((r) => r.overLowerBound <= 1.1 && r.ofNoReuse < 0.5);
console.log(`\nGoal (within 10% of the lower bound, under half of no reuse): ${met ? 'met' : 'NOT met'}`);
mkdirSync(new URL('../bench-results/', import.meta.url), { recursive: true });
writeFileSync(
  new URL('../bench-results/memory.json', import.meta.url),
  `${JSON.stringify({ bench: 'memory', batch: BATCH, rows }, null, 2)}\n`,
);
