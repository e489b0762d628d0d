import { exp, Graph, mul, relu, tanh } from '@kiln/ir';
import { describe, expect, it } from 'vitest';
import { lowerPlan } from '../src/cluster/lower.js';
import { parseToWorker } from '../src/cluster/protocol.js';
import { plan } from '../src/plan/plan.js';
import { NullDevice } from '../src/testing/null-device.js';

describe('lowerPlan', () => {
  // worker:0 -> worker:1 -> worker:0, with a value of the first stage also read by the last.
  const g = new Graph();
  const x = g.placeholder('float32', [4], 'x');
  const a = g.onDevice('worker:0', () => exp(x));
  const b = g.onDevice('worker:1', () => tanh(a));
  const c = g.onDevice('worker:0', () => mul(relu(b), a));
  const p = plan(g, [new NullDevice({ name: 'worker:0' }), new NullDevice({ name: 'worker:1' })], {
    fetches: [c.id],
    feeds: new Map([[x.id, { dtype: 'float32' as const, shape: [4] }]]),
  });
  const lowered = lowerPlan(p, 't');

  it('keeps a value on its worker between two of its partitions, and pushes it to the other', () => {
    const [first, middle, last] = [...lowered.partitions].sort((l, r) => l.stage - r.stage);
    expect([first!.worker, middle!.worker, last!.worker]).toEqual(['worker:0', 'worker:1', 'worker:0']);
    // a is kept on worker:0 for its last stage, and pushed straight to worker:1: both are order
    // only to the coordinator, which carries neither.
    expect(first!.keeps).toHaveLength(2);
    expect(first!.returns).toEqual([]);
    expect(middle!.args).toEqual([]);
    expect(first!.keeps).toEqual(
      expect.arrayContaining(middle!.waits!.filter((k) => first!.keeps!.includes(k))),
    );
    const load = lowered.loads.find((l) => l.message.partition === first!.key)!.message;
    const a = load.outputs.find((o) => o.keep?.length === 1)!;
    expect(a.push).toEqual([['worker:1', expect.any(String)]]);
    const lastLoad = lowered.loads.find((l) => l.message.partition === last!.key)!.message;
    expect(lastLoad.inputs.filter((i) => i.kind === 'local')).toHaveLength(1);
    expect(lastLoad.inputs.filter((i) => i.kind === 'peer')).toHaveLength(1);
    const middleLoad = lowered.loads.find((l) => l.message.partition === middle!.key)!.message;
    expect(middleLoad.inputs.map((i) => i.kind)).toEqual(['peer']);
  });

  it('sends the coordinator only what is fetched', () => {
    const returned = lowered.partitions.flatMap((p) => p.returns);
    expect(returned).toEqual([{ values: [], fetches: [0] }]);
  });

  it('produces load messages a worker accepts', () => {
    for (const { message } of lowered.loads)
      expect(parseToWorker({ ...message, request: 1 })).toEqual({ ...message, request: 1 });
  });
});
