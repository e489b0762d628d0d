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

  it('keeps a value on its worker between two of its partitions, and sends it to the other', () => {
    const [first, , last] = [...lowered.partitions].sort((l, r) => l.stage - r.stage);
    expect([first!.worker, last!.worker]).toEqual(['worker:0', 'worker:0']);
    // a goes to worker:1 as data, and to the last stage of worker:0 as a kept value (order only).
    expect(first!.keeps).toHaveLength(1);
    expect(last!.waits).toEqual(first!.keeps);
    expect(last!.args.some((arg) => 'value' in arg && first!.keeps!.includes(arg.value))).toBe(false);
    expect(first!.returns.flatMap((r) => r.values)).toHaveLength(1);
    const load = lowered.loads.find((l) => l.message.partition === first!.key)!.message;
    expect(load.outputs.some((o) => o.keep?.length === 1)).toBe(true);
    const lastLoad = lowered.loads.find((l) => l.message.partition === last!.key)!.message;
    expect(lastLoad.inputs.filter((i) => i.kind === 'local')).toHaveLength(1);
  });

  it('produces load messages a worker accepts', () => {
    for (const { message } of lowered.loads)
      expect(parseToWorker({ ...message, request: 1 })).toEqual({ ...message, request: 1 });
  });
});
