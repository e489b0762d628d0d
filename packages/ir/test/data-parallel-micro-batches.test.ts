import {
  Adam,
  type DataParallel,
  type DataParallelOptions,
  dataParallel,
  Graph,
  type GraphData,
  gradients,
  HostTensor,
  KilnError,
  microBatchDevices,
  type RefTensor,
  replicate,
  replicateVariables,
  SGD,
  shardBatch,
  trainableVariables,
  verifyGraph,
  zeros,
} from '@kiln/ir';
import { describe, expect, it } from 'vitest';
import {
  assignsOf,
  evaluate,
  initialState,
  refFeeds,
  type State,
  trainStep,
} from './fixtures/interpret-training.js';
import { batch, mlp } from './fixtures/small-mlp.js';

const devicesOf = (n: number) => Array.from({ length: n }, (_, r) => `worker:${r}/cpu`);

/** The MLP data-parallel over n devices with K micro-batches (Adam, cross-entropy). */
function build(n: number, K: number, extra: Partial<DataParallelOptions> = {}): DataParallel {
  return dataParallel(mlp({ loss: 'crossEntropy' }), {
    devices: devicesOf(n),
    loss: 'loss',
    shard: ['x', 'y'],
    optimizer: new Adam({ learningRate: 0.05 }),
    microBatches: K,
    ...extra,
  });
}

/** A new global batch of 24 rows each step: the losses (as float32 bits) and the final state. */
function train(dp: DataParallel, steps: number) {
  let state = initialState(dp.graph);
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) {
    const feeds = refFeeds(shardBatch(batch(100 + s, 'crossEntropy', 24), dp));
    const out = trainStep(dp.graph, feeds, state, dp.loss.id, assignsOf(dp.graph));
    losses.push(out.loss);
    state = out.state;
  }
  return { losses, state };
}

const bits = (t: RefTensor) => Array.from(new Uint32Array(Float32Array.from(t.data).buffer));
const bitsOf = (x: number) => new Uint32Array(Float32Array.of(x).buffer)[0]!;

/** Every variable of device r (weights and optimizer state) by its name in the graph. */
function deviceVariables(g: GraphData, device: string): string[] {
  return g.nodes
    .filter((n) => n.op === 'variable' && n.device === device)
    .map((n) => String(n.attrs.name))
    .sort();
}

describe('dataParallel with microBatches', () => {
  it('trains to bit-identical weights, optimizer state and losses on 1, 2, 3, 4 and 5 devices', () => {
    const K = 12;
    const runs = [1, 2, 3, 4, 5].map((n) => {
      const dp = build(n, K);
      verifyGraph(dp.graph);
      return { n, dp, ...train(dp, 3) };
    });
    const one = runs[0]!;
    // Training moved: a comparison of runs that never left their start would prove nothing.
    expect(one.losses[2]).not.toBe(one.losses[0]);
    const names0 = deviceVariables(one.dp.graph, devicesOf(1)[0]!);
    // The weights, Adam's moments and its step counter.
    expect(names0.length).toBe(4 * 3 + 1);
    for (const { n, dp, losses, state } of runs) {
      expect(losses.map(bitsOf), `losses on ${n} devices`).toEqual(one.losses.map(bitsOf));
      for (let r = 0; r < n; r++) {
        const names = deviceVariables(dp.graph, devicesOf(n)[r]!);
        expect(names.length).toBe(names0.length);
        names.forEach((name, i) =>
          expect(bits(state.get(name)!), `${name} on ${n} devices`).toEqual(bits(one.state.get(names0[i]!)!)),
        );
      }
    }
  });

  it("sums the K micro-batches' gradients as one left fold in micro-batch order, on any number of devices", () => {
    const K = 6;
    const feeds = batch(5, 'crossEntropy', 12);
    // The reference: each micro-batch's gradients on the single-device graph, folded here in float32.
    const single = mlp({ loss: 'crossEntropy' });
    const loss = single.tensor('loss');
    const grads = gradients([loss], trainableVariables(loss)) as NonNullable<
      ReturnType<typeof gradients>[0]
    >[];
    const state = initialState(single);
    const rows = 12 / K;
    const micro = Array.from({ length: K }, (_, k) => {
      const part = (t: HostTensor) => {
        const width = t.shape[1]!;
        return new HostTensor(
          'float32',
          [rows, width],
          t.data.slice(k * rows * width, (k + 1) * rows * width),
        );
      };
      const env = evaluate(
        single,
        refFeeds({ x: part(feeds.x), y: part(feeds.y), scale: feeds.scale }),
        state,
        [loss.id, ...grads.map((g) => g.id)],
      );
      return {
        loss: env.get(loss.id)!.data[0]!,
        bucket: grads.flatMap((g) => Array.from(env.get(g.id)!.data)),
      };
    });
    const fold = (order: number[]) =>
      order
        .slice(1)
        .reduce(
          (acc, k) => acc.map((v, i) => Math.fround(v + micro[k]!.bucket[i]!)),
          micro[order[0]!]!.bucket,
        )
        .map((v) => Math.fround(v / K));
    const inOrder = fold([0, 1, 2, 3, 4, 5]);
    // The reference can tell orders apart: folded in reverse, some element rounds differently.
    expect(fold([5, 4, 3, 2, 1, 0])).not.toEqual(inOrder);
    const expectedLoss = Math.fround(micro.reduce((a, m) => Math.fround(a + m.loss), 0) / K);
    for (const n of [1, 2, 3, 4]) {
      const dp = build(n, K, { optimizer: new SGD({ learningRate: 0.1 }) });
      const mean = dp.graph.tensor('microBatches/mean');
      const env = evaluate(dp.graph, refFeeds(shardBatch(feeds, dp)), initialState(dp.graph), [
        mean.id,
        dp.loss.id,
      ]);
      expect(Array.from(env.get(mean.id)!.data), `the mean gradient on ${n} devices`).toEqual(inOrder);
      expect(env.get(dp.loss.id)!.data[0], `the loss on ${n} devices`).toBe(expectedLoss);
    }
  });

  it('puts each micro-batch on its device in contiguous ranges, and folds down the device chain', () => {
    expect(microBatchDevices(12, 5)).toEqual([0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 4, 4]);
    expect(microBatchDevices(4, 4)).toEqual([0, 1, 2, 3]);
    const n = 5;
    const K = 12;
    const devices = devicesOf(n);
    const owner = microBatchDevices(K, n);
    const dp = build(n, K);
    const g = dp.graph;
    const deviceOfValue = (v: number) => g.nodes[g.values[v]!.node]!.device;
    for (const node of g.nodes) {
      expect(node.device, `${node.name}`).toBeDefined();
      const m = /^replica(\d+)\/m(\d+)\//.exec(node.name ?? '');
      if (m) {
        expect(Number(m[1])).toBe(owner[Number(m[2])]);
        expect(node.device, `${node.name}`).toBe(devices[owner[Number(m[2])]!]);
      }
    }
    // K-1 adds, the k-th on micro-batch k's device, reading the running sum from its own device or
    // the one before it.
    const folds = g.nodes.filter((node) => node.name?.startsWith('microBatches/fold'));
    expect(folds.map((node) => node.device)).toEqual(owner.slice(1).map((r) => devices[r]));
    for (const node of folds) {
      const r = devices.indexOf(node.device!);
      const from = devices.indexOf(deviceOfValue(node.inputs[0]!)!);
      expect([r, r - 1]).toContain(from);
      expect(deviceOfValue(node.inputs[1]!)).toBe(node.device);
    }
    const mean = g.nodes.find((node) => node.name === 'microBatches/mean')!;
    expect(mean.device).toBe(devices[n - 1]);
    // One set of weights per device, shared by its micro-batches; the initializers are not copied
    // into the micro-batches (only each device's variables compute them).
    const randoms = (data: GraphData) => data.nodes.filter((node) => node.op.startsWith('random')).length;
    expect(randoms(g)).toBe(n * randoms(mlp({ loss: 'crossEntropy' })));
    expect(dp.variables.get('dense1/w')).toEqual(devices.map((_, r) => `replica${r}/dense1/w`));
    expect(dp.feeds.get('x')).toEqual(Array.from({ length: K }, (_, k) => `x@m${k}`));
    expect(dp.feeds.get('scale')).toEqual(Array.from({ length: K }, (_, k) => `scale@m${k}`));
    expect(dp.outputs.get('logits')!.map((t) => t.node.device)).toEqual(owner.map((r) => devices[r]));
    expect(Object.keys(g.outputs)).toContain('logits@m11');
    expect(dp.loss.node.device).toBe(devices[0]);
    expect(dp.microBatches).toBe(K);
    for (const t of dp.train) expect(devices).toContain(t.node.device);
  });

  it('names the variables of device r, optimizer state included, the same whatever the device count', () => {
    for (const scope of [undefined, 'job7']) {
      const two = build(2, 12, scope ? { scope } : {});
      const three = build(3, 12, scope ? { scope } : {});
      const names = (dp: DataParallel) =>
        dp.graph.nodes.filter((n) => n.op === 'variable').map((n) => String(n.attrs.name));
      const inTwo = names(two);
      const inThree = new Set(names(three));
      for (const name of inTwo) expect(inThree.has(name), name).toBe(true);
      for (let r = 0; r < 2; r++)
        expect(deviceVariables(two.graph, devicesOf(2)[r]!)).toEqual(
          deviceVariables(three.graph, devicesOf(3)[r]!),
        );
      // What three devices have more is device 2's, and all of it.
      const extra = [...inThree].filter((name) => !inTwo.includes(name)).sort();
      expect(extra).toEqual(deviceVariables(three.graph, devicesOf(3)[2]!));
      for (const [original, perDevice] of two.variables)
        expect(three.variables.get(original)!.slice(0, 2)).toEqual(perDevice);
      if (scope) for (const name of inTwo) expect(name.startsWith('job7/'), name).toBe(true);
    }
    // The names as they are: weights and moments under replica r, Adam's step counter numbered.
    expect(deviceVariables(build(2, 4).graph, devicesOf(2)[1]!)).toEqual([
      'adam/step_1',
      'replica1/dense1/b',
      'replica1/dense1/b/adam_m',
      'replica1/dense1/b/adam_v',
      'replica1/dense1/w',
      'replica1/dense1/w/adam_m',
      'replica1/dense1/w/adam_v',
      'replica1/dense2/b',
      'replica1/dense2/b/adam_m',
      'replica1/dense2/b/adam_v',
      'replica1/dense2/w',
      'replica1/dense2/w/adam_m',
      'replica1/dense2/w/adam_v',
    ]);
  });

  it('gives each micro-batch its share of a known batch, and shardBatch splits a batch into K parts', () => {
    const known = dataParallel(mlp({ loss: 'squaredError', batch: 12 }), {
      devices: devicesOf(2),
      loss: 'loss',
      shard: ['x', 'y'],
      optimizer: new SGD({ learningRate: 0.1 }),
      microBatches: 4,
    });
    const x = known.graph.nodes.filter(
      (n) => n.op === 'placeholder' && String(n.attrs.name).startsWith('x@'),
    );
    expect(x.map((n) => n.attrs.shape)).toEqual([
      [3, 4],
      [3, 4],
      [3, 4],
      [3, 4],
    ]);
    const feeds = batch(1, 'squaredError');
    const out = shardBatch(feeds, known);
    for (let k = 0; k < 4; k++) {
      expect(out[`x@m${k}`]!.shape).toEqual([3, 4]);
      expect(out[`x@m${k}`]!.data.buffer).toBe(feeds.x.data.buffer);
      expect(Array.from(out[`x@m${k}`]!.data)).toEqual(Array.from(feeds.x.data.slice(12 * k, 12 * (k + 1))));
      expect(out[`scale@m${k}`]).toBe(feeds.scale);
    }
    expect(() => shardBatch(batch(1, 'squaredError', 10), build(2, 4))).toThrow(
      /'x' has shape \[10,4\]; its batch of 10 does not split into 4 equal parts \(one per micro-batch\)/,
    );
  });

  it('rejects bad microBatches values with errors that name what was wrong', () => {
    const expectError = (f: () => unknown, message: RegExp) => {
      expect(f).toThrow(KilnError);
      expect(f).toThrow(message);
    };
    for (const bad of [0, -2, 2.5, Number.NaN])
      expectError(() => build(1, bad), /microBatches must be an integer >= 1, got/);
    expectError(() => build(5, 4), /5 devices for 4 micro-batches; each device needs at least one/);
    expectError(() => build(2, 4, { shardUpdate: true }), /microBatches cannot be combined with shardUpdate/);
    expectError(
      () =>
        dataParallel(mlp({ loss: 'squaredError', batch: 10 }), {
          devices: devicesOf(2),
          loss: 'loss',
          shard: ['x', 'y'],
          optimizer: new SGD({ learningRate: 0.1 }),
          microBatches: 4,
        }),
      /cannot shard placeholder 'x': its batch of 10 does not split into 4 equal micro-batches/,
    );
    // An uneven spread over the devices is fine: 12 over 5 is 3, 3, 2, 2, 2.
    expect(() => build(5, 12)).not.toThrow();
  });
});

describe('replicate with shared variables', () => {
  function source() {
    const g = new Graph();
    const x = g.placeholder('float32', [2], 'x');
    const w = g.variable('w', zeros(g, [2]));
    g.output('y', x.mul(w));
    return g;
  }

  it('reads the given variables, making none of its own', () => {
    const g = new Graph();
    const weights = replicateVariables(g, source(), 'replica0');
    const a = replicate(g, source(), {
      scope: 'a',
      placeholderName: (n) => `${n}@a`,
      placeholderShape: (_, s) => s,
      variables: weights,
    });
    const b = replicate(g, source(), {
      scope: 'b',
      placeholderName: (n) => `${n}@b`,
      placeholderShape: (_, s) => s,
      variables: weights,
    });
    expect(a.variables.get('w')).toBe(weights.get('w'));
    expect(b.variables.get('w')).toBe(weights.get('w'));
    expect(g.nodes.filter((n) => n.op === 'variable').map((n) => n.attrs.name)).toEqual(['replica0/w']);
    expect(g.initializers.map((i) => i.variable)).toEqual(['replica0/w']);
    const state: State = initialState(g);
    expect(Array.from(state.get('replica0/w')!.data)).toEqual([0, 0]);
  });

  it('refuses a missing or mistyped variable, naming it', () => {
    const g = new Graph();
    const spec = {
      scope: 'a',
      placeholderName: (n: string) => n,
      placeholderShape: (_: string, s: readonly (number | null)[]) => s,
    };
    expect(() => replicate(g, source(), { ...spec, variables: new Map() })).toThrow(
      /no variable given for 'w' of the source graph; given: none/,
    );
    const other = new Graph();
    const wrong = other.variable('v', zeros(other, [3]));
    expect(() => replicate(other, source(), { ...spec, variables: new Map([['w', wrong]]) })).toThrow(
      /the variable given for 'w' is f32\[3\]; the source's is f32\[2\]/,
    );
  });
});
