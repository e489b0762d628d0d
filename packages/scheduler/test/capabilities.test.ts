import { CpuDevice } from '@kiln/backend-cpu';
import { type ConcreteType, Graph, OP_NAMES, opDef, Prng, parseAttrs } from '@kiln/ir';
import { describe, expect, it } from 'vitest';
import { CapabilityDevice, describeCapabilities } from '../src/cluster/capabilities.js';
import { parseFromWorker } from '../src/cluster/protocol.js';
import { plan } from '../src/plan/plan.js';
import { NullDevice } from '../src/testing/null-device.js';

/**
 * A worker reports what its device runs when it joins, and the coordinator plans with that report
 * alone: the planning device must accept what the real device accepts.
 */
describe('device capabilities', () => {
  const cpu = new CpuDevice({ name: 'worker:0' });
  const report = describeCapabilities(cpu);

  it('answers as the device does, op by op, on every conformance case', () => {
    const planning = new CapabilityDevice(report);
    let checked = 0;
    for (const op of OP_NAMES) {
      for (const c of opDef(op).cases(new Prng(7))) {
        const attrs = parseAttrs(op, c.attrs as Record<string, unknown>, op);
        const inputs: ConcreteType[] = c.inputs.map((t) => ({ dtype: t.dtype, shape: t.shape }));
        const outputs = opDef(op).infer(inputs, attrs as never) as ConcreteType[];
        const query = { op, attrs, inputs, outputs };
        expect([op, planning.supports(query).ok]).toEqual([op, cpu.supports(query).ok]);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(500);
  });

  it('travels in a ready message and survives validation', () => {
    const back = parseFromWorker({ t: 'ready', version: 1, worker: 'worker:0', device: report });
    expect(back.t === 'ready' && back.device).toEqual(report);
  });

  it('says which op and dtype a worker did not report', () => {
    const partial = new CapabilityDevice({ ...report, ops: report.ops.filter(([op]) => op !== 'matmul') });
    const g = new Graph();
    const x = g.placeholder('float32', [2, 2], 'x');
    const y = g.apply('matmul', [x, x], {})[0]!;
    expect(() =>
      plan(g, [partial], { fetches: [y.id], feeds: new Map([[x.id, { dtype: 'float32', shape: [2, 2] }]]) }),
    ).toThrow(/worker:0 \(cpu\) reported no kernel for matmul/);
  });

  it('reports every op of the null device', () => {
    const nullReport = describeCapabilities(new NullDevice({ name: 'n' }));
    expect(nullReport.ops.length).toBeGreaterThan(50);
  });
});
