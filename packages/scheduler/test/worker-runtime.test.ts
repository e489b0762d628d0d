import { add, Graph, sum } from '@kiln/ir';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { lowerPlan } from '../src/cluster/lower.js';
import {
  type FromWorker,
  PROTOCOL_VERSION,
  type ToWorker,
  type WireTensor,
} from '../src/cluster/protocol.js';
import { WorkerRuntime } from '../src/cluster/worker-runtime.js';
import { plan } from '../src/plan/plan.js';
import { NullDevice } from '../src/testing/null-device.js';

/**
 * A WorkerRuntime driven with protocol messages directly, as a coordinator would over any
 * transport: one partition on worker 'w0' that reads v and u, returns v + x + sum(u) and assigns
 * it to v.
 */
const f32 = (...values: number[]): WireTensor => ({
  dtype: 'float32',
  shape: [values.length],
  bytes: new Uint8Array(new Float32Array(values).buffer),
});
const values = (t: WireTensor) => Array.from(new Float32Array(t.bytes.slice().buffer));

function lowered() {
  const g = new Graph();
  const x = g.placeholder('float32', [2], 'x');
  const v = g.variable('v', g.constant({ dtype: 'float32', shape: [2], data: new Float32Array(2) }));
  const u = g.variable('u', g.constant({ dtype: 'float32', shape: [3], data: new Float32Array(3) }));
  // u takes part through its sum, which the tests keep at zero.
  const y = add(add(v, x), sum(u));
  const step = g.assign(v, y);
  const p = plan(g, [new NullDevice({ name: 'w0' })], {
    fetches: [y.id],
    targets: [step.id],
    feeds: new Map([[x.id, { dtype: 'float32' as const, shape: [2] }]]),
  });
  return lowerPlan(p, 'p');
}

describe('WorkerRuntime', () => {
  let runtime: WorkerRuntime;
  let partition: string;
  let next = 100;
  const request = () => next++;
  const send = (m: ToWorker) => runtime.handle(m);
  const run = async (id: number, x: WireTensor): Promise<FromWorker | null> =>
    send({ t: 'run', run: id, partition, args: [x] });
  const v = async () => {
    const reply = await send({ t: 'getVariables', request: request(), names: ['v'] });
    if (reply?.t !== 'variables') throw new Error(`getVariables: ${JSON.stringify(reply)}`);
    return values(reply.variables[0]![1]);
  };
  const result = (reply: FromWorker | null) => {
    if (reply?.t !== 'done') throw new Error(`run: ${JSON.stringify(reply)}`);
    return values(reply.results[0]!);
  };

  beforeEach(async () => {
    runtime = new WorkerRuntime({ module: '@kiln/backend-cpu' });
    expect(await send({ t: 'hello', version: PROTOCOL_VERSION, worker: 'w0' })).toMatchObject({ t: 'ready' });
    const { loads } = lowered();
    expect(loads).toHaveLength(1);
    partition = loads[0]!.message.partition;
    expect(await send({ ...loads[0]!.message, request: request() })).toMatchObject({ t: 'ok' });
  });
  afterEach(async () => {
    await runtime.dispose();
  });

  const setBoth = (vv: WireTensor) =>
    send({
      t: 'setVariables',
      request: request(),
      variables: [
        ['v', vv],
        ['u', f32(0, 0, 0)],
      ],
    });

  it('stages assigns until their run is committed; later runs read them; a release drops them', async () => {
    await setBoth(f32(1, 2));
    expect(result(await run(0, f32(10, 10)))).toEqual([11, 12]);
    // Not stored yet: the variable is what it was.
    expect(await v()).toEqual([1, 2]);
    // Run 1 sees what run 0 staged, as it would had run 0's update been stored.
    expect(result(await run(1, f32(1, 1)))).toEqual([12, 13]);
    await send({ t: 'commit', runs: [0, 1] });
    expect(await v()).toEqual([12, 13]);

    expect(result(await run(2, f32(5, 5)))).toEqual([17, 18]);
    await send({ t: 'release', runs: [2] });
    expect(await v()).toEqual([12, 13]);
    expect(result(await run(3, f32(1, 1)))).toEqual([13, 14]);

    // Committing one run of two staged leaves the other staged; committing again changes nothing.
    expect(result(await run(4, f32(1, 1)))).toEqual([14, 15]);
    await send({ t: 'commit', runs: [3] });
    await send({ t: 'commit', runs: [3] });
    expect(await v()).toEqual([13, 14]);
    await send({ t: 'release', runs: [4] });
    expect(await v()).toEqual([13, 14]);
  });

  it('answers a re-sent request with its first reply, and does not carry it out again', async () => {
    const id = request();
    const set = (value: WireTensor): ToWorker => ({
      t: 'setVariables',
      request: id,
      variables: [['v', value]],
    });
    await setBoth(f32(0, 0));
    const first = await send(set(f32(1, 2)));
    expect(first).toEqual({ t: 'ok', request: id });
    expect(await send(set(f32(100, 100)))).toEqual(first);
    expect(await v()).toEqual([1, 2]);

    // A refused request stays refused: its re-send is not tried again.
    const bad = request();
    const refused = await send({ t: 'setVariables', request: bad, variables: [['v', f32(1, 2, 3)]] });
    expect(refused).toMatchObject({ t: 'failed', request: bad, error: { code: 'invalid-argument' } });
    expect(await send({ t: 'setVariables', request: bad, variables: [['v', f32(7, 7)]] })).toEqual(refused);
    expect(await v()).toEqual([1, 2]);

    // A reply that carried tensors is not kept: its re-send is refused, saying so.
    const read = request();
    expect(await send({ t: 'getVariables', request: read, names: ['v'] })).toMatchObject({ t: 'variables' });
    expect(await send({ t: 'getVariables', request: read, names: ['v'] })).toMatchObject({
      t: 'failed',
      request: read,
      error: {
        code: 'protocol',
        message: expect.stringMatching(/request \d+ was already answered on worker 'w0'/),
      },
    });
  });

  it('refuses a re-sent run, and a run of a run that has ended', async () => {
    await setBoth(f32(1, 2));
    expect(result(await run(0, f32(1, 1)))).toEqual([2, 3]);
    const again = await run(0, f32(1, 1));
    expect(again).toMatchObject({
      t: 'failed',
      run: 0,
      partition,
      error: {
        code: 'protocol',
        message: expect.stringMatching(/partition p\/w0#0 of run 0 was already run on worker 'w0'/),
      },
    });
    await send({ t: 'commit', runs: [0] });
    // Added once, not twice.
    expect(await v()).toEqual([2, 3]);

    await send({ t: 'release', runs: [1] });
    expect(await run(1, f32(1, 1))).toMatchObject({
      t: 'failed',
      error: { message: expect.stringMatching(/run 1 has already ended on worker 'w0'/) },
    });
    expect(await v()).toEqual([2, 3]);
  });

  it('refuses a coordinator of protocol version 1, which would never commit what runs stage', async () => {
    const old = new WorkerRuntime({ module: '@kiln/backend-cpu' });
    expect(await old.handle({ t: 'hello', version: 1, worker: 'w1' })).toMatchObject({
      t: 'failed',
      error: {
        code: 'protocol',
        message: `protocol version 1 is not supported (this worker speaks ${PROTOCOL_VERSION})`,
      },
    });
    await old.dispose();
  });

  it("refuses a value whose type differs from the variable's, setting none of the call's values", async () => {
    // No value yet: the type comes from the loaded partition.
    expect(
      await send({ t: 'setVariables', request: request(), variables: [['v', f32(1, 2, 3)]] }),
    ).toMatchObject({
      t: 'failed',
      error: {
        code: 'invalid-argument',
        message: "variable 'v' is float32[2] on worker 'w0', got float32[3]",
      },
    });
    await setBoth(f32(1, 2));
    // v is sound, u is not: neither is set.
    const reply = await send({
      t: 'setVariables',
      request: request(),
      variables: [
        ['v', f32(5, 5)],
        ['u', f32(1, 1)],
      ],
    });
    expect(reply).toMatchObject({
      t: 'failed',
      error: { message: "variable 'u' is float32[3] on worker 'w0', got float32[2]" },
    });
    expect(await v()).toEqual([1, 2]);
    expect(result(await run(0, f32(0, 0)))).toEqual([1, 2]);
  });
});
