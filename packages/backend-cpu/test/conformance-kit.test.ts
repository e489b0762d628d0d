import { CpuDevice, type CpuExecutable } from '@kiln/backend-cpu';
import type { BufferView, Executable, Subgraph } from '@kiln/ir';
import { runConformance } from '@kiln/ir/conformance';
import { describe, expect, it } from 'vitest';

/** A CPU device with one deliberate fault, to show the kit catches that kind of bug. */
class FaultyDevice extends CpuDevice {
  constructor(private readonly fault: (sub: Subgraph, exe: CpuExecutable) => Executable) {
    super({ name: 'faulty:0' });
  }
  override async compile(subgraph: Subgraph): Promise<Executable> {
    return this.fault(subgraph, this.compileSync(subgraph));
  }
}

const opOf = (sub: Subgraph) => sub.nodes[sub.nodes.length - 1]!.op;

describe('the conformance kit', () => {
  it('reports a kernel that is off by more than the tolerance', async () => {
    const device = new FaultyDevice((sub, exe) => ({
      run: async (ins: readonly BufferView[], outs: readonly BufferView[]) => {
        exe.runSync(ins, outs);
        if (opOf(sub) !== 'exp') return;
        const bytes = await device.read(
          outs[0]!.buffer,
          outs[0]!.byteOffset,
          4 * outs[0]!.shape.reduce((a, b) => a * b, 1),
        );
        const f = new Float32Array(bytes.buffer);
        for (let i = 0; i < f.length; i++) f[i]! *= 1.001;
        await device.write(outs[0]!.buffer, outs[0]!.byteOffset, f);
      },
      dispose: () => exe.dispose(),
    }));
    const report = await runConformance(device, { ops: ['exp', 'add'] });
    expect(report.failures.length).toBeGreaterThan(0);
    expect(new Set(report.failures.map((f) => f.check))).toEqual(new Set(['exp']));
    expect(report.failures[0]!.message).toMatch(/elements differ; first at element \d+: got .*, expected/);
  });

  it('reports a kernel that writes outside its output view', async () => {
    const device = new FaultyDevice((sub, exe) => ({
      run: async (ins: readonly BufferView[], outs: readonly BufferView[]) => {
        exe.runSync(ins, outs);
        if (opOf(sub) === 'neg')
          await device.write(outs[0]!.buffer, outs[0]!.byteOffset - 4, new Uint8Array(4));
      },
      dispose: () => exe.dispose(),
    }));
    const report = await runConformance(device, { ops: ['neg'] });
    expect(report.failures.some((f) => /outside its result views|overwrote input/.test(f.message))).toBe(
      true,
    );
  });

  it('reports a device that ignores NaN semantics', async () => {
    const device = new FaultyDevice((sub, exe) => ({
      run: async (ins: readonly BufferView[], outs: readonly BufferView[]) => {
        exe.runSync(ins, outs);
        if (opOf(sub) !== 'maximum') return;
        const n = outs[0]!.shape.reduce((a, b) => a * b, 1);
        const f = new Float32Array((await device.read(outs[0]!.buffer, outs[0]!.byteOffset, 4 * n)).buffer);
        for (let i = 0; i < n; i++) if (Number.isNaN(f[i])) f[i] = 0;
        await device.write(outs[0]!.buffer, outs[0]!.byteOffset, f);
      },
      dispose: () => exe.dispose(),
    }));
    const report = await runConformance(device, { ops: ['maximum'] });
    expect(report.failures.length).toBeGreaterThan(0);
  });

  it('runs its system checks once when a suite splits the ops across tests', async () => {
    const device = new CpuDevice({ name: 'cpu:kit' });
    const opsOnly = await runConformance(device, { ops: ['neg'], systemChecks: false });
    const both = await runConformance(device, { ops: ['neg'] });
    const systemOnly = await runConformance(device, { ops: [] });
    expect(opsOnly.cases).toBeGreaterThan(0);
    expect(systemOnly.cases).toBeGreaterThan(0);
    expect(opsOnly.cases + systemOnly.cases).toBe(both.cases);
    expect([opsOnly, both, systemOnly].map((r) => r.failures)).toEqual([[], [], []]);
  });
});
