import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { extractSubgraph, Graph, matmul, Prng } from '@kiln/ir';
import { runOnDevice, singleOpSubgraph } from '@kiln/ir/conformance';
import { describe, expect, it } from 'vitest';
import { addon, NativeDevice, unavailableReason } from '../src/index.js';
import { OFF_THREAD_FLOPS } from '../src/threading.js';
import { differing } from './differing-bits.js';

/**
 * Long kernels leave the JavaScript thread in an asynchronous run: the event loop goes on while a
 * large product computes on the thread's kernel thread, with the same bits as on the calling thread.
 */
const required = process.env.KILN_REQUIRE_NATIVE === '1';
if (!addon && !required) console.warn(`skipping the native device's off-thread tests: ${unavailableReason}`);

/** The longest gap between ticks of a 2 ms interval while `work` runs, in ms. */
async function longestStall(work: () => Promise<unknown>): Promise<number> {
  let last = performance.now();
  let longest = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
  }, 2);
  try {
    await work();
    return Math.max(longest, performance.now() - last);
  } finally {
    clearInterval(timer);
  }
}

describe.skipIf(!addon && !required)('backend-native off the JavaScript thread', () => {
  // 1536 x 1536: 7 GFLOP, tens of milliseconds on one thread of any machine this runs on.
  const n = 1536;
  const type = { dtype: 'float32', shape: [n, n] } as const;
  const rng = new Prng(5);
  const a = Float32Array.from({ length: n * n }, () => rng.normal());
  const b = Float32Array.from({ length: n * n }, () => rng.normal());

  /** A product compiled on `device`, its operands written: run() computes into `c`. */
  async function product(device: NativeDevice) {
    const exe = await device.compile(singleOpSubgraph('matmul', [type, type], {}));
    const [x, y, z] = [0, 1, 2].map(() => device.allocate(n * n * 4));
    await device.write(x!, 0, a);
    await device.write(y!, 0, b);
    const view = (buffer: typeof x) => ({ buffer: buffer!, byteOffset: 0, ...type });
    return {
      run: () => exe.run([view(x), view(y)], [view(z)]),
      c: async () => new Float32Array((await device.read(z!, 0, n * n * 4)).buffer),
    };
  }

  it('keeps timers running while a large product computes, with the bits of a synchronous run', async () => {
    const off = await product(new NativeDevice({ threads: 1 }));
    const on = await product(new NativeDevice({ threads: 1, offThread: false }));
    const threeTimes = async (run: () => Promise<void>) => {
      for (let i = 0; i < 3; i++) await run();
    };
    const offStall = await longestStall(() => threeTimes(off.run));
    const onStall = await longestStall(() => threeTimes(on.run));
    expect(differing(await off.c(), await on.c())).toBe(0);
    console.log(
      `longest stall of a 2 ms timer: ${offStall.toFixed(1)} ms off the thread, ${onStall.toFixed(1)} ms on it`,
    );
    // On the calling thread, each product holds the event loop for its whole length; off it, the
    // timer keeps its pace (a stall well under one product).
    expect(onStall).toBeGreaterThan(2 * offStall);
  }, 60_000);

  it('runs convolutions and their gradients off the thread, with the bits of a synchronous run', async () => {
    // 64 x 28 x 28 x 32 images, 3 x 3 x 32 x 64 filters: 1.8 GFLOP each, over the threshold. A
    // oneDNN primitive made on one thread and run on another once wrote through a null pointer.
    const x = { dtype: 'float32', shape: [64, 28, 28, 32] } as const;
    const w = { dtype: 'float32', shape: [3, 3, 32, 64] } as const;
    const y = { dtype: 'float32', shape: [64, 28, 28, 64] } as const;
    expect(2 * 64 * 28 * 28 * 64 * 3 * 3 * 32).toBeGreaterThanOrEqual(OFF_THREAD_FLOPS);
    const window = { strides: [1, 1], padding: 'same', dilations: [1, 1] };
    const data = (t: { shape: readonly number[] }) =>
      Float32Array.from({ length: t.shape.reduce((p, d) => p * d, 1) }, () => rng.normal());
    const cases = [
      singleOpSubgraph('conv2d', [x, w], window),
      singleOpSubgraph('conv2dBackpropInput', [y, w], { ...window, inputShape: x.shape }),
      singleOpSubgraph('conv2dBackpropFilter', [x, y], { ...window, filterShape: w.shape }),
    ];
    const inputs = [
      [data(x), data(w)],
      [data(y), data(w)],
      [data(x), data(y)],
    ];
    const off = new NativeDevice({ threads: 1 });
    const on = new NativeDevice({ threads: 1, offThread: false });
    for (const [i, sub] of cases.entries()) {
      const [got] = await runOnDevice(off, sub, inputs[i]!);
      const [want] = await runOnDevice(on, sub, inputs[i]!);
      expect(differing(got!, want!), sub.nodes.at(-1)!.op).toBe(0);
    }
  }, 60_000);

  it('takes overlapping runs of one executable in turn, each with its own result', async () => {
    // Two products in a chain, (x y) y: the first's result is an intermediate of the executable,
    // which two runs at once would overwrite under each other.
    const m = 1024;
    const square = { dtype: 'float32', shape: [m, m] } as const;
    const g = new Graph();
    const [x, y] = [g.placeholder('float32', [m, m], 'x'), g.placeholder('float32', [m, m], 'y')];
    const first = matmul(x, y);
    const second = matmul(first, y);
    const chain = extractSubgraph(g, {
      nodes: [first.node.id, second.node.id],
      bind: new Map([
        [x.id, square],
        [y.id, square],
      ]),
      results: [second.id],
    }).subgraph;
    const device = new NativeDevice({ threads: 1 });
    const exe = await device.compile(chain);
    const buffers = [0, 1, 2, 3].map(() => device.allocate(m * m * 4));
    const [p, q] = [a.subarray(0, m * m), b.subarray(0, m * m)];
    await device.write(buffers[0]!, 0, p);
    await device.write(buffers[1]!, 0, q);
    const view = (i: number) => ({ buffer: buffers[i]!, byteOffset: 0, ...square });
    await Promise.all([exe.run([view(0), view(1)], [view(2)]), exe.run([view(1), view(0)], [view(3)])]);
    const reference = new NativeDevice({ offThread: false });
    const [pq] = await runOnDevice(reference, chain, [p, q]);
    const [qp] = await runOnDevice(reference, chain, [q, p]);
    const result = async (i: number) =>
      new Float32Array((await device.read(buffers[i]!, 0, m * m * 4)).buffer);
    expect(differing(await result(2), pq!)).toBe(0);
    expect(differing(await result(3), qp!)).toBe(0);
    // A synchronous run cannot wait its turn: it refuses while an asynchronous one is in flight.
    const flying = exe.run([view(0), view(1)], [view(2)]);
    await new Promise((r) => setTimeout(r, 1));
    expect(() => exe.runSync!([view(0), view(1)], [view(2)])).toThrow(/asynchronous run is still in flight/);
    await flying;
  }, 60_000);

  it('runs the kernels queued on one thread in the order they were queued', async () => {
    // A product into c, then a program reading c, queued together: the program must see the
    // whole product (a pool of threads would run them at once).
    const m = 1024;
    const [x, y] = [a.subarray(0, m * m), b.subarray(0, m * m)];
    const c = new Float32Array(m * m);
    const doubled = new Float32Array(m * m);
    const none = Int32Array.of(0);
    const add = addon!.createProgram(
      Int32Array.of(32, 0, 0, -1),
      1,
      Float64Array.of(1),
      Float64Array.of(m * m),
      Int32Array.of(1),
    );
    await Promise.all([
      addon!.sgemmBatched(false, false, m, m, m, x, y, c, none, none, none, true),
      addon!.runProgram(add, [c], [doubled], 1, true),
    ]);
    expect(
      differing(
        doubled,
        c.map((v) => v + v),
      ),
    ).toBe(0);
    expect(c.some((v) => v !== 0)).toBe(true);
  }, 60_000);

  it('gives each worker thread a kernel thread of its own, ended with it mid-kernel', async () => {
    const library = fileURLToPath(new URL('../build/Release/kiln_native.node', import.meta.url));
    // Each worker queues four 1536 x 1536 products off its thread and reports their first values.
    const source = `
      const { parentPort, workerData } = require('node:worker_threads');
      const addon = require(workerData.library);
      const n = 1536, none = Int32Array.of(0);
      const x = new Float32Array(n * n).fill(0.5), c = new Float32Array(n * n);
      const runs = [0, 1, 2, 3].map(() => addon.sgemmBatched(false, false, n, n, n, x, x, c, none, none, none, true));
      parentPort.postMessage('queued');
      Promise.all(runs).then(() => parentPort.postMessage(c[0]));
    `;
    const start = () => new Worker(source, { eval: true, workerData: { library } });
    const message = (w: Worker) => new Promise<unknown>((resolve) => w.once('message', resolve));
    // One is ended while its kernel thread computes; the process and the others go on.
    const ended = start();
    await message(ended);
    await ended.terminate();
    const [p, q] = [start(), start()];
    const results = await Promise.all(
      [p, q].map(async (w) => {
        await message(w); // queued
        return message(w); // the products' first value
      }),
    );
    expect(results).toEqual([0.25 * 1536, 0.25 * 1536]);
    await Promise.all([p.terminate(), q.terminate()]);
  }, 60_000);
});
