import { CpuDevice } from '@kiln/backend-cpu';
import {
  add,
  cond,
  Graph,
  greater,
  HostTensor,
  interpret,
  KilnError,
  matmul,
  mul,
  Prng,
  randomNormal,
  refTensor,
  relu,
  softmax,
  sum,
  tensor,
} from '@kiln/ir';
import { Session } from '@kiln/scheduler';
import { describe, expect, it } from 'vitest';

const device = () => new CpuDevice();

async function rejection(p: Promise<unknown>): Promise<KilnError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(KilnError);
    return e as KilnError;
  }
  throw new Error('expected a rejection');
}

/** Two dense layers with an unknown batch dimension. */
function mlp() {
  const g = new Graph();
  const x = g.placeholder('float32', [null, 6], 'x');
  const w1 = g.variable('w1', randomNormal(g, [6, 8], { seed: 1, stddev: 0.5 }));
  const b1 = g.variable('b1', tensor(g, new Array(8).fill(0.1), [8]));
  const w2 = g.variable('w2', randomNormal(g, [8, 3], { seed: 2, stddev: 0.5 }));
  const h = g.scope('dense1', () => relu(add(matmul(x, w1), b1)));
  const logits = g.scope('dense2', () => matmul(h, w2));
  const probs = softmax(logits);
  return { g, x, w1, b1, w2, logits, probs };
}

describe('Session', () => {
  it('matches the float64 reference interpreter on a two-layer model', async () => {
    const { g, x, logits, probs } = mlp();
    const session = new Session(g, { device: device() });
    const rng = new Prng(3);
    const input = HostTensor.from(
      Array.from({ length: 4 }, () => Array.from({ length: 6 }, () => rng.normal())),
    );
    const out = await session.run({ logits, probs }, { x: input });
    expect(out.probs.shape).toEqual([4, 3]);

    const vars = new Map();
    for (const name of ['w1', 'b1', 'w2']) {
      const v = await session.readVariable(name);
      vars.set(g.tensor(name).id, refTensor(v.dtype, v.shape, v.data));
    }
    vars.set(x.id, refTensor('float32', input.shape, input.data));
    const env = interpret(
      g,
      g.nodes.map((n) => n.id).filter((id) => !['placeholder', 'variable'].includes(g.nodes[id]!.op)),
      vars,
    );
    const want = env.get(probs.id)!.data;
    out.probs.data.forEach((p, i) => expect(p).toBeCloseTo(want[i]!, 5));
    for (let r = 0; r < 4; r++)
      expect(Array.from(out.probs.data.slice(r * 3, r * 3 + 3)).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
  });

  it('runs any batch size for an unknown dimension', async () => {
    const { g, probs } = mlp();
    const session = new Session(g, { device: device() });
    for (const n of [1, 5, 2]) {
      const out = await session.run(probs, { x: HostTensor.zeros('float32', [n, 6]) });
      expect(out.shape).toEqual([n, 3]);
    }
  });

  it('initializes variables from the counter-based RNG identically in every session', async () => {
    const a = await new Session(mlp().g, { device: device() }).readVariable('w1');
    const b = await new Session(mlp().g, { device: device() }).readVariable('w1');
    expect(Array.from(a.data)).toEqual(Array.from(b.data));
    expect(new Set(a.data).size).toBe(48);
  });

  it('runs only what the fetches need: a fetch that needs no placeholder needs no feed', async () => {
    const { g, w1 } = mlp();
    const total = sum(w1);
    const session = new Session(g, { device: device() });
    const s = await session.run(total);
    const w = await session.readVariable('w1');
    expect(s.data[0]).toBeCloseTo(
      Array.from(w.data).reduce((p, q) => p + q),
      4,
    );
  });

  it('names the placeholder in feed errors: missing, unknown, wrong dtype, wrong shape', async () => {
    const { g, probs } = mlp();
    const session = new Session(g, { device: device() });
    expect((await rejection(session.run(probs))).message).toMatch(
      /missing feed for placeholder 'x' \(f32\[\?,6\]\)/,
    );
    expect(
      (await rejection(session.run(probs, { x: HostTensor.zeros('float32', [2, 6]), y: [1] }))).message,
    ).toMatch(/'y' is not a placeholder of this graph; placeholders: x/);
    expect((await rejection(session.run(probs, { x: HostTensor.zeros('int32', [2, 6]) }))).message).toMatch(
      /placeholder 'x'.*has dtype int32/,
    );
    const shape = await rejection(session.run(probs, { x: HostTensor.zeros('float32', [2, 5]) }));
    expect(shape.code).toBe('feed');
    expect(shape.message).toMatch(/placeholder 'x' \(f32\[\?,6\]\) has shape \[2,5\]/);
    expect((await rejection(session.run(probs, { x: [[1, 2], [3]] }))).message).toMatch(/ragged/);
    // The session is still usable after bad feeds.
    expect((await session.run(probs, { x: [[1, 2, 3, 4, 5, 6]] })).shape).toEqual([1, 3]);
  });

  it('keeps variables between runs; assigns take effect after the run that makes them', async () => {
    const g = new Graph();
    const counter = g.variable('counter', tensor(g, [0], [], 'float32'));
    const step = g.assign(counter, add(counter, 1));
    const doubled = mul(step, 2);
    const session = new Session(g, { device: device() });
    const first = await session.run([counter, step, doubled]);
    expect(first.map((t) => t.data[0])).toEqual([0, 1, 2]);
    await session.run(step);
    expect((await session.readVariable('counter')).data[0]).toBe(2);
  });

  it('rejects an initializer that reads a placeholder, and a second assign in one run', async () => {
    const g = new Graph();
    const x = g.placeholder('float32', [2], 'x');
    g.variable('bad', relu(x));
    await expect(new Session(g, { device: device() }).initialize()).rejects.toThrow(
      /initializer of variable 'bad' depends on placeholder 'x'/,
    );

    const h = new Graph();
    const v = h.variable('v', tensor(h, [1], []));
    const a1 = h.assign(v, add(v, 1));
    const a2 = h.assign(v, add(v, 2));
    await expect(new Session(h, { device: device() }).run([a1, a2])).rejects.toThrow(
      /assigns variable 'v' twice/,
    );
  });

  it('runs structured control flow: a cond whose branch depends on the feed', async () => {
    const g = new Graph();
    const x = g.placeholder('float32', [3], 'x');
    const [y] = cond(
      g,
      greater(sum(x), 0),
      [x],
      (t) => [relu(t)],
      (t) => [mul(t, -2)],
    );
    g.output('y', y!);
    const session = new Session(g, { device: device() });
    expect(Array.from((await session.run('y', { x: [1, -2, 3] })).data)).toEqual([1, 0, 3]);
    expect(Array.from((await session.run('y', { x: [1, -5, 3] })).data)).toEqual([-2, 10, -6]);
  });

  it('reads its feeds when run is called: changing them afterwards changes nothing', async () => {
    const g = new Graph();
    const x = g.placeholder('float32', [2], 'x');
    const y = mul(x, 2);
    const session = new Session(g, { device: device() });
    const h = new HostTensor('float32', [2], Float32Array.of(1, 2));
    const nested = [3, 4];
    // The second run waits behind the first; both read their feeds as they were at the call.
    const first = session.run(y, { x: h });
    const second = session.run(y, { x: nested });
    h.data.fill(100);
    nested.fill(100);
    expect(Array.from((await first).data)).toEqual([2, 4]);
    expect(Array.from((await second).data)).toEqual([6, 8]);
  });

  it('copies a checkpoint when restore is called', async () => {
    const g = new Graph();
    const v = g.variable('v', tensor(g, [0, 0], [2]));
    const session = new Session(g, { device: device() });
    const w = new HostTensor('float32', [2], Float32Array.of(5, 6));
    const restored = session.restore({ variables: { v: w }, metadata: {} });
    w.data.fill(-1);
    await restored;
    expect(Array.from((await session.run(v)).data)).toEqual([5, 6]);
  });

  it('assigns a variable that was never initialized', async () => {
    const g = new Graph();
    const v = g.variable('v', tensor(g, [0, 0], [2]));
    const x = g.placeholder('float32', [2], 'x');
    const set = g.assign(v, x);
    const session = new Session(g, { device: device() });
    expect(Array.from((await session.run(set, { x: [3, 4] })).data)).toEqual([3, 4]);
    expect(Array.from((await session.readVariable('v')).data)).toEqual([3, 4]);
  });

  it('refuses a device built for another ABI, and runs after close', async () => {
    const bad = Object.assign(device(), { abi: 1 });
    expect(() => new Session(new Graph(), { device: bad as never })).toThrow(
      /implements kernel ABI 1, but this kiln speaks ABI 2/,
    );
    const { g, w1 } = mlp();
    const session = new Session(g, { device: device() });
    await session.close();
    await expect(session.run(w1)).rejects.toThrow(/closed/);
  });
});
