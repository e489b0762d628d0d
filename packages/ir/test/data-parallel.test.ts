import {
  Adam,
  bucketAllReduce,
  chunkBounds,
  chunkOwner,
  dataParallel,
  deserializeGraph,
  Graph,
  type GraphData,
  gradients,
  HostTensor,
  KilnError,
  mean,
  type Optimizer,
  Prng,
  printGraph,
  type RefTensor,
  refTensor,
  ringAllReduce,
  SGD,
  serializeGraph,
  shardBatch,
  trainableVariables,
  type ValueId,
  verifyGraph,
  zeros,
} from '@kiln/ir';
import { describe, expect, it } from 'vitest';
import { evaluate, initialState, refFeeds, trainParallel, trainStep } from './fixtures/interpret-training.js';
import { batch, type ModelOptions, mlp, optimizers } from './fixtures/small-mlp.js';

// ------------------------------------------------------------------ ring all-reduce

/** n placeholders, one per device, of one shape; and random float32 values for them. */
function ringFixture(n: number, shape: number[], seed: number, pieceElements?: number) {
  const g = new Graph();
  const devices = Array.from({ length: n }, (_, r) => `worker:${r}/cpu`);
  const values = devices.map((d, r) => g.onDevice(d, () => g.placeholder('float32', shape, `v${r}`)));
  const sums = ringAllReduce(g, values, devices, pieceElements === undefined ? {} : { pieceElements });
  const rng = new Prng(seed);
  const size = shape.reduce((a, b) => a * b, 1);
  const feeds = Object.fromEntries(
    values.map((_, r) => [
      `v${r}`,
      refTensor(
        'float32',
        shape,
        Array.from({ length: size }, () => rng.normal() * 10 ** rng.int(-3, 3)),
      ),
    ]),
  );
  const env = evaluate(
    g,
    feeds,
    new Map(),
    sums.map((s) => s.id),
  );
  const results = sums.map((s) => env.get(s.id)!);
  const inputs = values.map((_, r) => feeds[`v${r}`]!.data);
  return { g, devices, sums, results, inputs, size };
}

const deviceOfValue = (g: GraphData, v: ValueId) => g.nodes[g.values[v]!.node]!.device;

describe('ringAllReduce', () => {
  const cases: [number, number[]][] = [
    [1, [5]],
    [2, [7]],
    [2, [1]],
    [3, [2, 5]],
    [3, [2]],
    [4, [3]],
    [4, [3, 3]],
    [4, [13]],
    [3, []],
  ];
  for (const [n, shape, pieceElements] of [
    ...cases,
    ...cases.filter(([, shape]) => shape.length > 0).map(([n, shape]) => [n, shape, 2] as const),
  ] as [number, number[], number?][]) {
    const pieces = pieceElements === undefined ? '' : `, in pieces of ${pieceElements}`;
    it(`sums ${n} replicas of [${shape.join(',')}] in the ring's fixed order${pieces}, the same bits on every device`, () => {
      const { devices, sums, results, inputs, size } = ringFixture(
        n,
        shape,
        17 * n + shape.length,
        pieceElements,
      );
      const chunks = chunkBounds(size, n);
      for (const [r, out] of results.entries()) {
        expect(out.shape).toEqual(shape);
        expect(sums[r]!.node.device).toBe(devices[r]);
        for (let i = 0; i < size; i++) {
          const exact = inputs.reduce((a, v) => a + v[i]!, 0);
          const magnitude = inputs.reduce((a, v) => a + Math.abs(v[i]!), 0);
          // float32 rounding: n-1 adds, each off by at most half an ulp of the running sum.
          expect(Math.abs(out.data[i]! - exact)).toBeLessThanOrEqual((n - 1) * 2 ** -24 * magnitude);
          // The ring's order for chunk c is replica c, c+1, ..., c-1, rounded after each add.
          const c = chunks.findIndex(({ begin, size: s }) => i >= begin && i < begin + s);
          let ordered = inputs[c]![i]!;
          for (let s = 1; s < n; s++) ordered = Math.fround(ordered + inputs[(c + s) % n]![i]!);
          expect(out.data[i]).toBe(ordered);
        }
        expect(Array.from(out.data)).toEqual(Array.from(results[0]!.data));
      }
    });
  }

  it('reduces a large chunk piece by piece: n-1 adds per piece, each piece one value per hop', () => {
    for (const [n, length, piece] of [
      [2, 9, 2],
      [3, 20, 3],
      [4, 17, 1],
    ] as const) {
      const { g, devices } = ringFixture(n, [length], 1, piece);
      const pieces = chunkBounds(length, n)
        .filter(({ size }) => size > 0)
        .reduce((count, { size }) => count + Math.ceil(size / piece), 0);
      const adds = g.nodes.filter((node) => node.op === 'add');
      expect(adds.length).toBe((n - 1) * pieces);
      for (const node of adds) {
        const from = node.inputs.map((v) => deviceOfValue(g, v));
        const r = devices.indexOf(node.device!);
        expect(from.sort()).toEqual([devices[r], devices[(r + n - 1) % n]].sort());
        expect(g.values[node.outputs[0]!]!.type.shape[0]).toBeLessThanOrEqual(piece);
      }
    }
    const g = new Graph();
    const v = [g.placeholder('float32', [4], 'a'), g.placeholder('float32', [4], 'b')];
    expect(() => ringAllReduce(g, v, ['x', 'y'], { pieceElements: 0 })).toThrow(
      /pieceElements must be a positive integer, got 0/,
    );
  });

  it('adds on the device that owns the step, reading the partial sum from the previous device', () => {
    for (const [n, length] of [
      [2, 9],
      [3, 10],
      [4, 2],
      [4, 17],
    ] as const) {
      const { g, devices } = ringFixture(n, [length], 1);
      const adds = g.nodes.filter((node) => node.op === 'add');
      // Each non-empty chunk is reduced once: n-1 adds per chunk, not per replica.
      expect(adds.length).toBe((n - 1) * Math.min(n, length));
      for (const node of adds) {
        const r = devices.indexOf(node.device!);
        expect(r).toBeGreaterThanOrEqual(0);
        const from = node.inputs.map((v) => deviceOfValue(g, v));
        expect(from.sort()).toEqual([devices[r], devices[(r + n - 1) % n]].sort());
      }
      // Every cross-device read of the reduce-scatter goes from devices[r-1] to devices[r].
      for (const node of adds)
        for (const v of node.inputs) {
          const src = deviceOfValue(g, v);
          if (src !== node.device)
            expect(devices.indexOf(src!)).toBe((devices.indexOf(node.device!) + n - 1) % n);
        }
      // Chunk c is finished on its owner: the last add of the chunk runs there.
      const lastAdds = adds.slice(-Math.min(n, length));
      const owners = chunkBounds(length, n)
        .map((b, c) => ({ ...b, c }))
        .filter((b) => b.size > 0)
        .map(({ c }) => devices[chunkOwner(c, n)]);
      expect(lastAdds.map((node) => node.device)).toEqual(owners);
    }
  });

  it('bucketAllReduce sums many tensors with one ring and splits them back', () => {
    const n = 3;
    const g = new Graph();
    const devices = ['a', 'b', 'c'];
    const shapes = [[2, 3], [5], [], [1, 1]];
    const rng = new Prng(5);
    const feeds: Record<string, RefTensor> = {};
    const perReplica = devices.map((d, r) =>
      g.onDevice(d, () =>
        shapes.map((shape, i) => {
          const name = `t${i}@${r}`;
          feeds[name] = refTensor(
            'float32',
            shape,
            Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal()),
          );
          return g.placeholder('float32', shape, name);
        }),
      ),
    );
    const sums = bucketAllReduce(g, perReplica, devices);
    // One bucket per replica and one ring over it: n-1 adds for each of the n chunks.
    expect(g.nodes.filter((node) => node.op === 'add').length).toBe((n - 1) * n);
    expect(g.nodes.filter((node) => node.op === 'concat' && node.name?.includes('pack')).length).toBe(n);
    const env = evaluate(
      g,
      feeds,
      new Map(),
      sums.flat().map((t) => t.id),
    );
    shapes.forEach((shape, i) => {
      const exact = Array.from(feeds[`t${i}@0`]!.data, (_, j) =>
        devices.reduce((a, _d, r) => a + feeds[`t${i}@${r}`]!.data[j]!, 0),
      );
      const replicas = sums.map((s) => env.get(s[i]!.id)!);
      for (const [r, t] of replicas.entries()) {
        expect(t.shape).toEqual(shape);
        expect(sums[r]![i]!.node.device).toBe(devices[r]);
        t.data.forEach((v, j) =>
          expect(Math.abs(v - exact[j]!)).toBeLessThanOrEqual(1e-6 * (1 + Math.abs(exact[j]!))),
        );
        expect(Array.from(t.data)).toEqual(Array.from(replicas[0]!.data));
      }
    });
  });

  it('rejects bad device lists and mismatched values, naming the problem', () => {
    const g = new Graph();
    const a = g.placeholder('float32', [3], 'a');
    const b = g.placeholder('float32', [4], 'b');
    const c = g.placeholder('float32', [3], 'c');
    const other = new Graph().placeholder('float32', [3], 'x');
    const expectError = (f: () => unknown, message: RegExp) => {
      expect(f).toThrow(KilnError);
      expect(f).toThrow(message);
    };
    expectError(() => ringAllReduce(g, [], []), /at least one device/);
    expectError(() => ringAllReduce(g, [a, c], ['d', 'd']), /device 'd' is listed twice/);
    expectError(() => ringAllReduce(g, [a], ['d', 'e']), /1 values for 2 devices/);
    expectError(() => ringAllReduce(g, [a, b], ['d', 'e']), /value 1 is f32\[4\] but value 0 is f32\[3\]/);
    expectError(() => ringAllReduce(g, [a, other], ['d', 'e']), /value 1 .* belongs to another graph/);
    expectError(
      () => bucketAllReduce(g, [[a, b], [c]], ['d', 'e']),
      /replica 1 has 1 tensors, replica 0 has 2/,
    );
  });
});

// ------------------------------------------------------------------ data-parallel training

/** Trains the single-device model `steps` times on `feeds`: the losses and the final state. */
function trainSingle(
  forward: ModelOptions,
  optimizer: Optimizer,
  feeds: Record<string, HostTensor>,
  steps: number,
) {
  const g = mlp(forward);
  const train = optimizer.minimize(g.tensor('loss'));
  let state = initialState(g);
  const losses: number[] = [];
  const initial = state;
  for (let s = 0; s < steps; s++) {
    const out = trainStep(
      g,
      refFeeds(feeds),
      state,
      g.outputs.loss!,
      train.map((t) => t.node.id),
    );
    losses.push(out.loss);
    state = out.state;
  }
  return { losses, state, initial };
}

/** |a - b| <= tol * max(|b|, 1e-2), elementwise: relative, with a floor for values near zero. */
function expectClose(actual: RefTensor, expected: RefTensor, tol: number, what: string) {
  expect(actual.shape, what).toEqual(expected.shape);
  actual.data.forEach((v, i) => {
    const e = expected.data[i]!;
    if (Math.abs(v - e) > tol * Math.max(Math.abs(e), 1e-2))
      expect.fail(`${what}[${i}]: ${v} vs ${e} (relative tolerance ${tol})`);
  });
}

describe('dataParallel', () => {
  for (const [lossKind, optName] of [
    ['crossEntropy', 'sgd'],
    ['squaredError', 'adam'],
    ['crossEntropy', 'adam'],
  ] as const) {
    for (const n of [2, 3]) {
      it(`${n} replicas of an MLP (${lossKind}, ${optName}) train as one device does, and stay identical`, () => {
        const forward = { loss: lossKind } as const;
        const feeds = batch(7 + n, lossKind);
        const devices = Array.from({ length: n }, (_, r) => `worker:${r}/cpu`);
        const dp = dataParallel(mlp(forward), {
          devices,
          loss: 'loss',
          shard: ['x', 'y'],
          optimizer: optimizers[optName]!(),
        });
        verifyGraph(dp.graph);
        expect([...dp.feeds.keys()].sort()).toEqual(['scale', 'x', 'y']);
        expect(dp.feeds.get('x')).toEqual(devices.map((_, r) => `x@r${r}`));
        expect([...dp.variables.keys()].sort()).toEqual(['dense1/b', 'dense1/w', 'dense2/b', 'dense2/w']);
        expect(dp.variables.get('dense1/w')).toEqual(devices.map((_, r) => `replica${r}/dense1/w`));

        const single = trainSingle(forward, optimizers[optName]!(), feeds, 3);
        const oneStep = trainParallel(dp, dp.graph, feeds, 1);
        const threeSteps = trainParallel(dp, dp.graph, feeds, 3);

        for (const [original, names] of dp.variables) {
          // The counter-based RNG gives every replica the single-device model's initial weights.
          for (const name of names)
            expect(Array.from(threeSteps.initial.get(name)!.data), name).toEqual(
              Array.from(single.initial.get(original)!.data),
            );
          for (const run of [oneStep, threeSteps]) {
            const replica0 = run.state.get(names[0]!)!;
            for (const name of names.slice(1))
              expect(Array.from(run.state.get(name)!.data), `${name} equals ${names[0]}`).toEqual(
                Array.from(replica0.data),
              );
          }
          const singleAfterOne = trainSingle(forward, optimizers[optName]!(), feeds, 1).state;
          // The sums differ from the single device's only in float32 rounding order.
          expectClose(
            oneStep.state.get(names[0]!)!,
            singleAfterOne.get(original)!,
            1e-5,
            `${original} after 1 step`,
          );
          expectClose(
            threeSteps.state.get(names[0]!)!,
            single.state.get(original)!,
            1e-5,
            `${original} after 3 steps`,
          );
        }
        // The optimizer's own state (momentum, Adam's moments) is per replica and identical too.
        const slots = [...threeSteps.state.keys()].filter((k) =>
          /^replica0\/.*\/(momentum|adam_[mv])$/.test(k),
        );
        expect(slots.length).toBeGreaterThan(0);
        for (const slot of slots)
          for (let r = 1; r < n; r++)
            expect(Array.from(threeSteps.state.get(slot.replace('replica0/', `replica${r}/`))!.data)).toEqual(
              Array.from(threeSteps.state.get(slot)!.data),
            );
        threeSteps.losses.forEach((l, s) => {
          expect(Math.abs(l - single.losses[s]!)).toBeLessThanOrEqual(1e-6 * Math.abs(single.losses[s]!));
        });
        // Training did something: a test of "equal" between two runs that never moved would pass.
        expect(threeSteps.losses[2]).not.toBe(threeSteps.losses[0]);
      });
    }
  }

  for (const optName of ['sgd', 'adam'] as const) {
    for (const n of [2, 3]) {
      it(`${n} replicas with the update sharded (${optName}) train as the replicated update does`, () => {
        const forward = { loss: 'crossEntropy' } as const;
        const feeds = batch(7 + n, 'crossEntropy');
        const devices = Array.from({ length: n }, (_, r) => `worker:${r}/cpu`);
        const options = { devices, loss: 'loss', shard: ['x', 'y'] } as const;
        const plain = dataParallel(mlp(forward), { ...options, optimizer: optimizers[optName]!() });
        const sharded = dataParallel(mlp(forward), {
          ...options,
          optimizer: optimizers[optName]!(),
          shardUpdate: true,
        });
        verifyGraph(sharded.graph);
        const a = trainParallel(plain, plain.graph, feeds, 3);
        const b = trainParallel(sharded, sharded.graph, feeds, 3);
        for (const names of sharded.variables.values()) {
          // The same elementwise update on the same sums: equal to float32 rounding, and every
          // replica holds the same bits.
          for (const name of names) expectClose(b.state.get(name)!, a.state.get(name)!, 1e-6, name);
          for (const name of names.slice(1))
            expect(Array.from(b.state.get(name)!.data)).toEqual(Array.from(b.state.get(names[0]!)!.data));
        }
        b.losses.forEach((l, s) =>
          expect(Math.abs(l - a.losses[s]!)).toBeLessThanOrEqual(1e-6 * Math.abs(l)),
        );
        // The optimizer's state exists once, per shard, on the shard's owner: none per replica.
        const state = [...b.state.keys()];
        expect(state.some((k) => /^replica\d+\/.*(momentum|adam_[mv])$/.test(k))).toBe(false);
        const shards = sharded.graph.nodes.filter(
          (node) =>
            node.op === 'variable' && /^dataParallel\/shard\d+\/weights$/.test(String(node.attrs.name)),
        );
        expect(shards).toHaveLength(n);
        expect(new Set(shards.map((node) => node.device))).toEqual(new Set(devices));
      });
    }
  }

  it('places every replica on its device, with one gradient bucket, and survives serialization', () => {
    const devices = ['gpu:0', 'gpu:1', 'gpu:2'];
    const forward = { loss: 'squaredError' } as const;
    const dp = dataParallel(mlp(forward), {
      devices,
      loss: 'loss',
      shard: ['x', 'y'],
      optimizer: new Adam({ learningRate: 0.01 }),
    });
    for (const node of dp.graph.nodes) {
      expect(node.device, `${node.name}`).toBeDefined();
      const m = /^replica(\d)\//.exec(node.name ?? '');
      if (m) expect(node.device, `${node.name}`).toBe(devices[Number(m[1])]);
    }
    for (const t of dp.train) expect(devices).toContain(t.node.device);
    expect(dp.train.length).toBe(3 * (4 * 3 + 1));
    expect(dp.loss.node.device).toBe('gpu:0');
    expect(dp.outputs.get('logits')!.map((t) => t.node.device)).toEqual(devices);
    expect(dp.graph.nodes.filter((node) => node.op === 'concat' && node.name?.includes('pack')).length).toBe(
      3,
    );

    const back = deserializeGraph(serializeGraph(dp.graph));
    expect(back.nodes.map((node) => node.device)).toEqual(dp.graph.nodes.map((node) => node.device));
    const feeds = batch(3, 'squaredError');
    const original = trainParallel(dp, dp.graph, feeds, 2);
    const restored = trainParallel(dp, back, feeds, 2);
    expect(restored.losses).toEqual(original.losses);
    for (const [name, value] of original.state)
      expect(Array.from(restored.state.get(name)!.data)).toEqual(Array.from(value.data));
  });

  it("builds inside a scope with Adam: each replica's step counter is a variable of its own", () => {
    const dp = dataParallel(mlp({ loss: 'squaredError' }), {
      devices: ['gpu:0', 'gpu:1', 'gpu:2'],
      loss: 'loss',
      shard: ['x', 'y'],
      optimizer: new Adam({ learningRate: 0.01 }),
      scope: 'job7',
    });
    const counters = dp.graph.nodes
      .filter((n) => n.op === 'variable' && String(n.attrs.name).includes('adam/step'))
      .map((n) => String(n.attrs.name));
    expect(counters).toHaveLength(3);
    expect(new Set(counters).size).toBe(3);
    for (const name of counters) expect(name.startsWith('job7/')).toBe(true);
  });

  it('with one device is the single-device step', () => {
    const forward = { loss: 'crossEntropy' } as const;
    const feeds = batch(4, 'crossEntropy');
    const dp = dataParallel(mlp(forward), {
      devices: ['cpu'],
      loss: 'loss',
      shard: ['x', 'y'],
      optimizer: optimizers.sgd!(),
    });
    const parallel = trainParallel(dp, dp.graph, feeds, 2);
    const single = trainSingle(forward, optimizers.sgd!(), feeds, 2);
    expect(parallel.losses).toEqual(single.losses);
    for (const [original, [name]] of dp.variables)
      expect(Array.from(parallel.state.get(name!)!.data)).toEqual(
        Array.from(single.state.get(original)!.data),
      );
  });

  it('gives each replica its share of a known batch size', () => {
    const dp = dataParallel(mlp({ loss: 'squaredError', batch: 12 }), {
      devices: ['a', 'b', 'c'],
      loss: 'loss',
      shard: ['x', 'y'],
      optimizer: optimizers.sgd!(),
    });
    const x = dp.graph.nodes.filter((n) => n.op === 'placeholder' && String(n.attrs.name).startsWith('x@'));
    expect(x.map((n) => n.attrs.shape)).toEqual([
      [4, 4],
      [4, 4],
      [4, 4],
    ]);
    const scale = dp.graph.nodes.find((n) => n.op === 'placeholder' && n.attrs.name === 'scale@r2')!;
    expect(scale.attrs.shape).toEqual([]);
  });

  it('rejects bad options with errors that name what was wrong', () => {
    const options = { devices: ['a', 'b'], loss: 'loss', shard: ['x', 'y'], optimizer: optimizers.sgd!() };
    const expectError = (f: () => unknown, message: RegExp) => {
      expect(f).toThrow(KilnError);
      expect(f).toThrow(message);
    };
    const forward = mlp({ loss: 'squaredError' });
    expectError(() => dataParallel(forward, { ...options, devices: [] }), /at least one device/);
    expectError(
      () => dataParallel(forward, { ...options, devices: ['a', 'b', 'a'] }),
      /device 'a' is listed twice/,
    );
    expectError(
      () => dataParallel(forward, { ...options, loss: 'cost' }),
      /no output named 'cost'.*outputs: logits, loss/,
    );
    expectError(
      () => dataParallel(forward, { ...options, loss: 'logits' }),
      /loss 'logits' is f32\[\?,3\]; it must be a float32 scalar/,
    );
    expectError(
      () => dataParallel(forward, { ...options, shard: ['x', 'z'] }),
      /cannot shard 'z'.*placeholders: x, y, scale/,
    );
    expectError(
      () => dataParallel(forward, { ...options, shard: ['scale'] }),
      /placeholder 'scale': it is a scalar, with no batch dimension/,
    );
    expectError(
      () => dataParallel(mlp({ loss: 'squaredError', batch: 10 }), { ...options, devices: ['a', 'b', 'c'] }),
      /'x': its batch of 10 does not split into 3 equal parts/,
    );
    const withOptimizer = mlp({ loss: 'squaredError' });
    new SGD({ learningRate: 0.1 }).minimize(withOptimizer.tensor('loss'));
    expectError(() => dataParallel(withOptimizer, options), /must hold no assigns/);
    const untrainable = new Graph();
    untrainable.output('loss', mean(untrainable.placeholder('float32', [null], 'x')));
    expectError(
      () => dataParallel(untrainable, { ...options, shard: ['x'] }),
      /depends on no float32 variable/,
    );
    const foreignRate = new Graph().constant({ dtype: 'float32', shape: [], data: new Float32Array([0.1]) });
    expectError(
      () => dataParallel(forward, { ...options, optimizer: new SGD({ learningRate: foreignRate }) }),
      /building replica 0's update: .*different graphs/,
    );
  });

  it('applyGradients checks its pairs', () => {
    const g = new Graph();
    const w = g.variable('w', zeros(g, [2]));
    const x = g.placeholder('float32', [3], 'x');
    expect(() => new SGD({ learningRate: 0.1 }).applyGradients([[w, x]])).toThrow(
      /the gradient of variable 'w' is f32\[3\], not f32\[2\]/,
    );
    expect(() => new Adam({ learningRate: 0.1 }).applyGradients([[x, x]])).toThrow(/is not a variable/);
    expect(new Adam({ learningRate: 0.1 }).applyGradients([])).toEqual([]);
  });

  it('minimize is gradients followed by applyGradients, node for node', () => {
    const viaMinimize = mlp({ loss: 'crossEntropy' });
    new Adam({ learningRate: 0.1 }).minimize(viaMinimize.tensor('loss'));
    const split = mlp({ loss: 'crossEntropy' });
    const loss = split.tensor('loss');
    const vars = trainableVariables(loss);
    const grads = gradients([loss], vars);
    new Adam({ learningRate: 0.1 }).applyGradients(vars.map((v, i) => [v, grads[i]!] as const));
    expect(printGraph(split)).toBe(printGraph(viaMinimize));
  });
});

describe('shardBatch', () => {
  const dp = dataParallel(mlp({ loss: 'squaredError' }), {
    devices: ['a', 'b', 'c'],
    loss: 'loss',
    shard: ['x', 'y'],
    optimizer: optimizers.sgd!(),
  });

  it('splits sharded feeds into contiguous views and gives unsharded ones to every replica', () => {
    const feeds = batch(1, 'squaredError');
    const out = shardBatch(feeds, dp);
    expect(Object.keys(out).sort()).toEqual([
      'scale@r0',
      'scale@r1',
      'scale@r2',
      'x@r0',
      'x@r1',
      'x@r2',
      'y@r0',
      'y@r1',
      'y@r2',
    ]);
    for (let r = 0; r < 3; r++) {
      const x = out[`x@r${r}`]!;
      expect(x.shape).toEqual([4, 4]);
      // A view on the feed's memory, not a copy.
      expect(x.data.buffer).toBe(feeds.x.data.buffer);
      expect(Array.from(x.data)).toEqual(Array.from(feeds.x.data.slice(16 * r, 16 * (r + 1))));
      expect(out[`scale@r${r}`]).toBe(feeds.scale);
    }
  });

  it('takes nested arrays as Session.run does, in the placeholder dtype', () => {
    const feeds = batch(1, 'squaredError');
    const nested = (t: HostTensor) =>
      Array.from({ length: t.shape[0]! }, (_, i) =>
        Array.from(t.data.slice(i * t.shape[1]!, (i + 1) * t.shape[1]!)),
      );
    const out = shardBatch({ ...feeds, x: nested(feeds.x), y: nested(feeds.y) }, dp);
    const want = shardBatch(feeds, dp);
    for (const name of Object.keys(want)) {
      expect(out[name]!.dtype).toBe(want[name]!.dtype);
      expect(out[name]!.shape).toEqual(want[name]!.shape);
      expect(Array.from(out[name]!.data)).toEqual(Array.from(want[name]!.data));
    }
    expect(() => shardBatch({ ...feeds, x: [[1, 2], [3]] }, dp)).toThrow(/shardBatch: the feed for 'x': /);
  });

  it('rejects a batch that does not split evenly, a missing feed and an unknown one', () => {
    const feeds = batch(1, 'squaredError', 10);
    expect(() => shardBatch(feeds, dp)).toThrow(KilnError);
    expect(() => shardBatch(feeds, dp)).toThrow(
      /'x' has shape \[10,4\]; its batch of 10 does not split into 3/,
    );
    const { y: _y, ...noY } = batch(1, 'squaredError');
    expect(() => shardBatch(noY, dp)).toThrow(/no feed for placeholder 'y'/);
    expect(() => shardBatch({ ...batch(1, 'squaredError'), z: HostTensor.from(1) }, dp)).toThrow(
      /a feed for 'z', which is no placeholder/,
    );
  });
});
