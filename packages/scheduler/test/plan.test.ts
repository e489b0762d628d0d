import {
  add,
  deserializeGraph,
  exp,
  Graph,
  interpret,
  matmul,
  mul,
  Prng,
  type RefTensor,
  randomNormal,
  refTensor,
  relu,
  SGD,
  serializeGraph,
  softmax,
  sum,
  tensor,
  type ValueId,
  verifyGraph,
} from '@kiln/ir';
import { describe, expect, it } from 'vitest';
import { verifyPlan } from '../src/plan/memory.js';
import { type ExecutionPlan, formatPlan, plan } from '../src/plan/plan.js';
import { NullDevice } from '../src/testing/null-device.js';

/** Two dense layers; the second is hinted onto another device. */
function model() {
  const g = new Graph();
  const x = g.placeholder('float32', [8, 16], 'x');
  const w1 = g.variable('w1', randomNormal(g, [16, 32], { seed: 1 }));
  const w2 = g.variable('w2', randomNormal(g, [32, 4], { seed: 2 }));
  const h = relu(add(matmul(x, w1), 0.1));
  const start = g.nodes.length;
  const logits = softmax(matmul(h, w2));
  const hints = new Map(g.nodes.slice(start).map((n) => [n.id, 'null:1']));
  hints.set(w2.node.id, 'null:1');
  return { g, x, w1, w2, logits, hints };
}

/**
 * Runs a plan's partitions in stage order with the reference interpreter, as workers would: feeds
 * and variables by name, receives from the partitions before. Returns the fetched values and the
 * values each variable is assigned.
 */
function runPartitions(p: ExecutionPlan, byName: Readonly<Record<string, RefTensor>>) {
  const env = new Map<ValueId, RefTensor>();
  const fetched = new Map<ValueId, RefTensor>();
  const stores = new Map<string, RefTensor>();
  for (const part of p.partitions) {
    const bound = new Map(
      part.inputs.map((input, i) => [
        part.subgraph.inputs[i]!,
        input.kind === 'recv' ? env.get(input.value)! : byName[input.name]!,
      ]),
    );
    const out = interpret(
      part.subgraph,
      part.subgraph.nodes.map((n) => n.id).filter((id) => part.subgraph.nodes[id]!.op !== 'placeholder'),
      bound,
    );
    part.outputs.forEach((o, i) => {
      const t = out.get(part.subgraph.results[i]!)!;
      env.set(o.value, t);
      if (o.kind === 'assign') stores.set(o.variable, t);
      else if (o.kind === 'fetch' || p.fetches.includes(o.value)) fetched.set(o.value, t);
    });
  }
  return { fetched, stores };
}

describe('plan', () => {
  const devices = [new NullDevice({ name: 'null:0' }), new NullDevice({ name: 'null:1' })];

  it('places, partitions and plans memory per device, deterministically', () => {
    const { g, x, logits, hints } = model();
    const options = {
      fetches: [logits.id],
      feeds: new Map([[x.id, { dtype: 'float32' as const, shape: [8, 16] }]]),
      hints,
    };
    const p = plan(g, devices, options);
    expect(p.partitions.map((part) => `${part.device}#${part.stage}`)).toEqual(['null:0#0', 'null:1#1']);
    expect(p.transfers).toBe(1);
    for (const part of p.partitions) {
      verifyGraph(part.subgraph);
      verifyPlan(part.subgraph, part.memory);
      // A partition is data: it serializes and loads like any graph.
      expect(serializeGraph(deserializeGraph(serializeGraph(part.subgraph)))).toEqual(
        serializeGraph(part.subgraph),
      );
    }
    const text = formatPlan(p);
    expect(text).toMatch(/matmul.* -> null:1/);
    expect(text).toMatch(/partition null:1 stage 1: .*recv %\d+ from null:0/);
    expect(formatPlan(plan(g, devices, options))).toBe(text);
  });

  it('takes device scopes on the nodes as hints, as it takes a hint map', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [8, 16], 'x');
    const w1 = g.variable('w1', randomNormal(g, [16, 32], { seed: 1 }));
    const h = relu(add(matmul(x, w1), 0.1));
    const logits = g.onDevice('null:1', () => {
      const w2 = g.variable('w2', randomNormal(g, [32, 4], { seed: 2 }));
      return softmax(matmul(h, w2));
    });
    const scoped = plan(g, devices, {
      fetches: [logits.id],
      feeds: new Map([[x.id, { dtype: 'float32' as const, shape: [8, 16] }]]),
    });
    const hinted = model();
    const byMap = plan(hinted.g, devices, {
      fetches: [hinted.logits.id],
      feeds: new Map([[hinted.x.id, { dtype: 'float32' as const, shape: [8, 16] }]]),
      hints: hinted.hints,
    });
    const layout = (p: typeof scoped) => p.partitions.map((part) => `${part.device}#${part.stage}`);
    expect(layout(scoped)).toEqual(layout(byMap));
    expect(scoped.transfers).toBe(1);
  });

  it('computes what the unpartitioned graph computes (run with the reference interpreter)', () => {
    const { g, x, w1, w2, logits, hints } = model();
    const rng = new Prng(3);
    const values = (shape: number[]) =>
      refTensor(
        'float32',
        shape,
        Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal()),
      );
    const inputs = new Map<ValueId, RefTensor>([
      [x.id, values([8, 16])],
      [w1.id, values([16, 32])],
      [w2.id, values([32, 4])],
    ]);
    const whole = interpret(
      g,
      g.nodes.filter((n) => !['placeholder', 'variable'].includes(n.op)).map((n) => n.id),
      inputs,
    ).get(logits.id)!;

    const p = plan(g, devices, {
      fetches: [logits.id],
      feeds: new Map([[x.id, { dtype: 'float32', shape: [8, 16] }]]),
      hints,
    });
    // The plan's values are the optimized graph's; its placeholders and variables keep their names.
    const byName = (name: string) => p.graph.nodes.find((n) => n.attrs.name === name)!.outputs[0]!;
    const env = new Map<ValueId, RefTensor>([
      [byName('x'), inputs.get(x.id)!],
      [byName('w1'), inputs.get(w1.id)!],
      [byName('w2'), inputs.get(w2.id)!],
    ]);
    let fetched: RefTensor | undefined;
    // Stage order is a valid order: every partition's receives come from earlier stages.
    for (const part of p.partitions) {
      const bound = new Map(part.inputs.map((input, i) => [part.subgraph.inputs[i]!, env.get(input.value)!]));
      const out = interpret(
        part.subgraph,
        part.subgraph.nodes
          .map((n) => n.id)
          .filter((id) => !part.subgraph.inputs.includes(part.subgraph.nodes[id]!.outputs[0]!)),
        bound,
      );
      part.outputs.forEach((o, i) => {
        const t = out.get(part.subgraph.results[i]!)!;
        env.set(o.value, t);
        if (o.kind === 'fetch') fetched = t;
      });
    }
    expect(Array.from(fetched!.data)).toEqual(Array.from(whole.data));
  });

  it('carries a training step: updates are stored on the device that holds the variable', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [8, 16], 'x');
    const w1 = g.variable('w1', randomNormal(g, [16, 32], { seed: 1 }));
    const h = relu(matmul(x, w1));
    const { loss, w2 } = g.onDevice('null:1', () => {
      const w2 = g.variable('w2', randomNormal(g, [32, 4], { seed: 2 }));
      return { w2, loss: sum(mul(matmul(h, w2), matmul(h, w2))) };
    });
    const train = new SGD({ learningRate: 0.01 }).minimize(loss);
    const p = plan(g, devices, {
      fetches: [loss.id],
      targets: train.map((t) => t.id),
      feeds: new Map([[x.id, { dtype: 'float32' as const, shape: [8, 16] }]]),
    });
    const assigned = p.partitions.flatMap((part) =>
      part.outputs.flatMap((o) => (o.kind === 'assign' ? [[o.variable, part.device]] : [])),
    );
    expect(Object.fromEntries(assigned)).toEqual({ w1: 'null:0', w2: 'null:1' });
    expect(formatPlan(p)).toMatch(/assign %\d+ to 'w2'/);

    // Run the partitions with the reference interpreter: the stored values are the SGD updates.
    const rng = new Prng(5);
    const values = (shape: number[]) =>
      refTensor(
        'float32',
        shape,
        Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal()),
      );
    const feeds = { x: values([8, 16]), w1: values([16, 32]), w2: values([32, 4]) };
    const { stores } = runPartitions(p, feeds);
    const whole = interpret(
      g,
      g.nodes.filter((n) => !['placeholder', 'variable', 'assign'].includes(n.op)).map((n) => n.id),
      new Map([
        [x.id, feeds.x],
        [w1.id, feeds.w1],
        [w2.id, feeds.w2],
      ]),
    );
    for (const t of train) {
      const node = g.nodes[g.values[t.id]!.node]!;
      const expected = whole.get(node.inputs[0]!)!;
      const got = stores.get(String(node.attrs.variable))!;
      expect(Array.from(got.data).map((v, i) => Math.abs(v - expected.data[i]!))).toSatisfy((d: number[]) =>
        d.every((e) => e <= 1e-4),
      );
    }
  });

  it('binds a variable no later than its update, so a later reader sees the old value', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [4], 'x');
    const v = g.variable('v', tensor(g, [1, 2, 3, 4], [4]));
    const update = g.assign(v, mul(x, 2));
    // v's only reader waits for a value from another device, so it runs a stage after the update.
    const later = g.onDevice('null:1', () => exp(x));
    const reread = g.onDevice('null:0', () => add(later, v));
    const p = plan(g, devices, {
      fetches: [reread.id],
      targets: [update.id],
      feeds: new Map([[x.id, { dtype: 'float32' as const, shape: [4] }]]),
    });
    const binder = p.partitions.find((part) => part.inputs.some((i) => i.kind === 'variable'))!;
    const writer = p.partitions.find((part) => part.outputs.some((o) => o.kind === 'assign'))!;
    expect(binder.stage).toBeLessThanOrEqual(writer.stage);
    const feeds = {
      x: refTensor('float32', [4], [0.5, -1, 2, 0]),
      v: refTensor('float32', [4], [1, 2, 3, 4]),
    };
    const fetched = runPartitions(p, feeds).fetched.get(p.fetches[0]!);
    // exp(x) + the value v had before the run (not 2x).
    [0.5, -1, 2, 0].forEach((a, i) => expect(fetched!.data[i]).toBeCloseTo(Math.exp(a) + (i + 1), 5));
  });

  it("runs a stage's independent parts as partitions of their own, a variable with its assigns", () => {
    const g = new Graph();
    const x = g.placeholder('float32', [4], 'x');
    const [a1, a2] = [exp(x), mul(x, 3)];
    const [b1, b2] = g.onDevice('null:1', () => [add(a1, 1), mul(a2, 2)]);
    const feeds = new Map([[x.id, { dtype: 'float32' as const, shape: [4] }]]);
    const p = plan(g, devices, { fetches: [b1.id, b2.id], feeds });
    // Each of null:1's parts waits for its own value only.
    const parts = p.partitions.filter((part) => part.device === 'null:1');
    expect(parts.map((part) => [part.stage, part.part])).toEqual([
      [1, 0],
      [1, 1],
    ]);
    for (const part of parts) expect(part.inputs.filter((i) => i.kind === 'recv')).toHaveLength(1);
    expect(formatPlan(p)).toMatch(/partition null:1 stage 1 part 1: /);
    const xs = [0.5, -1, 2, 0];
    const { fetched } = runPartitions(p, { x: refTensor('float32', [4], xs) });
    xs.forEach((a, i) => {
      expect(fetched.get(p.fetches[0]!)!.data[i]).toBeCloseTo(Math.exp(a) + 1, 5);
      expect(fetched.get(p.fetches[1]!)!.data[i]).toBeCloseTo(a * 6, 5);
    });

    // A variable read by one chain and assigned by another: one part, so the read sees the
    // value the run started with, whatever order parts run in.
    const h = new Graph();
    const y = h.placeholder('float32', [4], 'y');
    const [c1, c2] = [exp(y), mul(y, 3)];
    const { read, update } = h.onDevice('null:1', () => {
      const v = h.variable('v', tensor(h, [1, 2, 3, 4], [4]));
      return { read: add(c1, v), update: h.assign(v, mul(c2, 2)) };
    });
    const q = plan(h, devices, {
      fetches: [read.id],
      targets: [update.id],
      feeds: new Map([[y.id, { dtype: 'float32' as const, shape: [4] }]]),
    });
    expect(q.partitions.filter((part) => part.device === 'null:1')).toHaveLength(1);
    const ran = runPartitions(q, {
      y: refTensor('float32', [4], xs),
      v: refTensor('float32', [4], [1, 2, 3, 4]),
    });
    xs.forEach((a, i) => expect(ran.fetched.get(q.fetches[0]!)!.data[i]).toBeCloseTo(Math.exp(a) + i + 1, 5));
    expect(Array.from(ran.stores.get('v')!.data)).toEqual(xs.map((a) => a * 6));
  });

  it('always yields partitions that run in stage order, whatever the hints (random graphs)', () => {
    const rng = new Prng(11);
    for (let trial = 0; trial < 25; trial++) {
      const g = new Graph();
      const x = g.placeholder('float32', [4, 6], 'x');
      let values = [x];
      const hints = new Map<number, string>();
      for (let k = 0; k < 12; k++) {
        const a = values[rng.int(0, values.length - 1)]!;
        const b = values[rng.int(0, values.length - 1)]!;
        const before = g.nodes.length;
        const y = rng.bool()
          ? relu(add(a, b))
          : add(
              matmul(
                a,
                g.constant({
                  dtype: 'float32',
                  shape: [6, 6],
                  data: Float32Array.from({ length: 36 }, () => rng.normal() / 3),
                }),
              ),
              b,
            );
        for (const n of g.nodes.slice(before)) hints.set(n.id, rng.pick(['null:0', 'null:1', 'null:2']));
        values.push(y);
      }
      const out = values[values.length - 1]!;
      const three = [...devices, new NullDevice({ name: 'null:2' })];
      const p = plan(g, three, {
        fetches: [out.id],
        feeds: new Map([[x.id, { dtype: 'float32', shape: [4, 6] }]]),
        hints,
      });
      const input = refTensor(
        'float32',
        [4, 6],
        Array.from({ length: 24 }, () => rng.normal()),
      );
      const whole = interpret(
        g,
        g.nodes.filter((n) => n.op !== 'placeholder').map((n) => n.id),
        new Map([[x.id, input]]),
      ).get(out.id)!;
      const env = new Map<ValueId, RefTensor>([
        [p.graph.nodes.find((n) => n.op === 'placeholder')!.outputs[0]!, input],
      ]);
      let fetched: RefTensor | undefined;
      for (const part of p.partitions) {
        const bound = new Map(
          part.inputs.map((inp, i) => {
            const t = env.get(inp.value);
            if (!t) throw new Error(`stage ${part.stage} on ${part.device} runs before %${inp.value} exists`);
            return [part.subgraph.inputs[i]!, t] as const;
          }),
        );
        const inputsSet = new Set(part.subgraph.inputs);
        const res = interpret(
          part.subgraph,
          part.subgraph.nodes.filter((n) => !n.outputs.some((v) => inputsSet.has(v))).map((n) => n.id),
          bound,
        );
        part.outputs.forEach((o, i) => {
          env.set(o.value, res.get(part.subgraph.results[i]!)!);
          if (o.kind === 'fetch') fetched = res.get(part.subgraph.results[i]!)!;
        });
      }
      expect(Array.from(fetched!.data)).toEqual(Array.from(whole.data));
      values = [];
    }
  });
});
