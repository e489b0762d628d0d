import { add, Graph, KilnError, mul } from '@kiln/ir';
import { afterEach, describe, expect, it } from 'vitest';
import { lowerPlan } from '../src/cluster/lower.js';
import {
  type PeerMessage,
  PROTOCOL_VERSION,
  type ToWorker,
  type WireTensor,
} from '../src/cluster/protocol.js';
import { type PeerSender, WorkerRuntime } from '../src/cluster/worker-runtime.js';
import { plan } from '../src/plan/plan.js';
import { NullDevice } from '../src/testing/null-device.js';

/**
 * A partition's pushes to its peers overlap the partitions after it: the worker takes its next
 * message as soon as the device work is done, while the link still writes the values out. Three
 * WorkerRuntimes on the CPU device, wired to each other in memory, with the sends from w0 to w1
 * held back until the test lets them go, as a slow socket would.
 *
 *   w0 stage 0: a = x * 2        pushed to w1, kept for w0's stage 1
 *   w2 stage 0: e = y + 0        pushed to w0
 *   w0 stage 1: c = a + e        (reads a where it was kept)
 *   w1 stage 1: b = a + 1
 */
const N = 4096;
const f32 = (data: Float32Array): WireTensor => ({
  dtype: 'float32',
  shape: [data.length],
  bytes: new Uint8Array(data.buffer),
});
const floats = (t: WireTensor) => new Float32Array(t.bytes.slice().buffer);

function lowered() {
  const g = new Graph();
  const x = g.onDevice('w0', () => g.placeholder('float32', [N], 'x'));
  const y = g.onDevice('w2', () => g.placeholder('float32', [N], 'y'));
  const a = g.onDevice('w0', () => mul(x, 2));
  const e = g.onDevice('w2', () => add(y, 0));
  const c = g.onDevice('w0', () => add(a, e));
  const b = g.onDevice('w1', () => add(a, 1));
  const devices = ['w0', 'w1', 'w2'].map((name) => new NullDevice({ name }));
  const p = plan(g, devices, {
    fetches: [c.id, b.id],
    feeds: new Map([
      [x.id, { dtype: 'float32' as const, shape: [N] }],
      [y.id, { dtype: 'float32' as const, shape: [N] }],
    ]),
  });
  return lowerPlan(p, 'p');
}

const runtimes: WorkerRuntime[] = [];
afterEach(async () => {
  for (const r of runtimes.splice(0)) await r.dispose();
});

describe('WorkerRuntime pushes', () => {
  it('runs the next partition while a push is written, and frees its buffer only once it is', async () => {
    const { loads, partitions } = lowered();
    const held: { bytes: Uint8Array; go: () => void }[] = [];
    const byName = new Map<string, WorkerRuntime>();
    // What a socket delivers: the bytes as they are when it writes them, copied.
    const deliver = (to: WorkerRuntime, message: PeerMessage, from: object) =>
      to.fromPeer(
        message.t === 'tensor'
          ? { ...message, tensor: { ...message.tensor, bytes: message.tensor.bytes.slice() } }
          : message,
        from,
      );
    // What each worker said it is done with (copied into its device): the transport may reuse it.
    const received: [string, Uint8Array][] = [];
    const sender = (from: string): PeerSender => ({
      received: (bytes) => received.push([from, bytes]),
      send(worker, message) {
        const to = byName.get(worker)!;
        if (from === 'w0' && worker === 'w1' && message.t === 'tensor')
          // Held: the bytes stay where they lie (the device's memory), as a socket holds them.
          return new Promise((resolve) =>
            held.push({
              bytes: message.tensor.bytes,
              go: () => {
                deliver(to, message, this);
                resolve();
              },
            }),
          );
        deliver(to, message, this);
        return Promise.resolve();
      },
    });
    for (const name of ['w0', 'w1', 'w2']) {
      const runtime = new WorkerRuntime({ module: '@kiln/backend-cpu' }, undefined, sender(name));
      runtimes.push(runtime);
      byName.set(name, runtime);
      await runtime.handle({ t: 'hello', version: PROTOCOL_VERSION, worker: name });
    }
    for (const [request, { worker, message }] of loads.entries())
      expect(await byName.get(worker)!.handle({ ...message, request })).toMatchObject({ t: 'ok' });
    const key = (worker: string, stage: number) =>
      partitions.find((p) => p.worker === worker && p.stage === stage)!.key;
    const x = new Float32Array(N).map((_, i) => i);
    const y = new Float32Array(N).fill(0.5);
    const run = (worker: string, stage: number, run: number, args: WireTensor[]): ToWorker => ({
      t: 'run',
      run,
      partition: key(worker, stage),
      args,
    });

    // w0's stage 0 is done on its device at once; its reply waits for the held push.
    const first = await byName.get('w0')!.accept(run('w0', 0, 1, [f32(x)]));
    let replied = false;
    void first.reply.then(() => {
      replied = true;
    });
    expect(held).toHaveLength(1);
    const pushed = held[0]!.bytes;
    expect(Array.from(new Float32Array(pushed.slice().buffer).subarray(0, 3))).toEqual([0, 2, 4]);

    // Meanwhile w0 goes on: it reads a where it was kept (its last reader there), and then runs
    // stage 0 for two more runs, allocating buffers of a's size from those it freed. a's buffer
    // is not one of them: the push still reads it.
    await byName.get('w2')!.handle(run('w2', 0, 1, [f32(y)]));
    const c = await byName.get('w0')!.handle(run('w0', 1, 1, []));
    expect(c).toMatchObject({ t: 'done' });
    const again = [];
    for (const id of [2, 3])
      again.push(await byName.get('w0')!.accept(run('w0', 0, id, [f32(new Float32Array(N).fill(-id))])));
    expect(replied).toBe(false);
    expect(Array.from(new Float32Array(pushed.slice().buffer).subarray(0, 3))).toEqual([0, 2, 4]);

    // The push is written: w1 computes from the bytes as they were, and w0's reply goes out.
    held.shift()!.go();
    expect(await first.reply).toMatchObject({ t: 'done', run: 1 });
    const b = await byName.get('w1')!.handle(run('w1', 1, 1, []));
    if (b?.t !== 'done') throw new Error(JSON.stringify(b));
    expect(Array.from(floats(b.results[0]!))).toEqual(Array.from(x, (v) => 2 * v + 1));
    // Each pushed value was handed back to its transport once in the device: e on w0, a on w1.
    expect(received.map(([worker]) => worker).sort()).toEqual(['w0', 'w1']);
    const [, a] = received.find(([worker]) => worker === 'w1')!;
    expect(Array.from(new Float32Array(a.slice().buffer).subarray(0, 3))).toEqual([0, 2, 4]);
    for (const h of held.splice(0)) h.go();
    await Promise.all(again.map((a) => a.reply));
  });

  it('fails the reply of a partition whose push fails, naming why, and leaves nothing unhandled', async () => {
    const { loads, partitions } = lowered();
    const gone: PeerSender = {
      send: () => Promise.reject(new KilnError('worker', "cannot send to 'w1': the link closed")),
    };
    const runtime = new WorkerRuntime({ module: '@kiln/backend-cpu' }, undefined, gone);
    runtimes.push(runtime);
    await runtime.handle({ t: 'hello', version: PROTOCOL_VERSION, worker: 'w0' });
    for (const [request, { worker, message }] of loads.entries())
      if (worker === 'w0') await runtime.handle({ ...message, request });
    const first = partitions.find((p) => p.worker === 'w0' && p.stage === 0)!.key;
    const reply = await runtime.handle({
      t: 'run',
      run: 1,
      partition: first,
      args: [f32(new Float32Array(N).fill(1))],
    });
    expect(reply).toMatchObject({
      t: 'failed',
      run: 1,
      partition: first,
      error: { code: 'worker', message: "cannot send to 'w1': the link closed" },
    });
    // The worker goes on: the next run of the partition is taken and fails the same way.
    expect(
      await runtime.handle({ t: 'run', run: 2, partition: first, args: [f32(new Float32Array(N))] }),
    ).toMatchObject({ t: 'failed', run: 2 });
  });
});
