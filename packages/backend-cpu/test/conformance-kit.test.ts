import { CpuDevice } from '@kiln/backend-cpu';
import type { BufferView, Executable, HostExecutable, NodeQuery, Subgraph, Support } from '@kiln/ir';
import { runConformance } from '@kiln/ir/conformance';
import { describe, expect, it } from 'vitest';

/** A CPU device with one deliberate fault, to show the kit catches that kind of bug. */
class FaultyDevice extends CpuDevice {
  constructor(private readonly fault: (sub: Subgraph, exe: HostExecutable) => Executable) {
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

  it('checks a composite both as claimed and expanded, and only expanded where it is declined', async () => {
    const claims = await runConformance(new CpuDevice({ name: 'cpu:kit' }), {
      ops: ['softmax'],
      systemChecks: false,
    });
    const checks = (r: typeof claims) => new Set(r.failures.map((f) => f.check));
    expect(claims.failures).toEqual([]);
    const declines = new (class extends CpuDevice {
      override supports(node: NodeQuery): Support {
        return node.op === 'softmax' ? { ok: false, reason: 'no fast path' } : super.supports(node);
      }
    })({ name: 'cpu:lean' });
    const expanded = await runConformance(declines, { ops: ['softmax'], systemChecks: false });
    expect(expanded.failures).toEqual([]);
    expect(expanded.unsupported).toEqual([{ op: 'softmax', reason: 'no fast path' }]);
    // Each case ran twice where the device claims softmax, once (expanded) where it declines it.
    expect(claims.cases).toBe(2 * expanded.cases);
    // A wrong expansion is caught: exp off by 0.1% reaches softmax only through the expansion.
    const offExp = new FaultyDevice((sub, exe) => ({
      run: async (ins: readonly BufferView[], outs: readonly BufferView[]) => {
        exe.runSync(ins, outs);
        if (!sub.nodes.some((n) => n.op === 'exp')) return;
        const last = outs[outs.length - 1]!;
        const n = last.shape.reduce((a, b) => a * b, 1);
        const f = new Float32Array((await offExp.read(last.buffer, last.byteOffset, 4 * n)).buffer);
        for (let i = 0; i < n; i++) f[i]! *= 1.01;
        await offExp.write(last.buffer, last.byteOffset, f);
      },
      dispose: () => exe.dispose(),
    }));
    expect(checks(await runConformance(offExp, { ops: ['softmax'], systemChecks: false }))).toEqual(
      new Set(['softmax (expanded)']),
    );
  });

  it('fails a device that declines a primitive or reports another ABI, naming the check', async () => {
    const device = new (class extends CpuDevice {
      override readonly abi = 1 as never;
      override supports(node: NodeQuery): Support {
        return node.op === 'exp' ? { ok: false, reason: 'no exp here' } : super.supports(node);
      }
    })({ name: 'cpu:old' });
    const report = await runConformance(device, { ops: ['exp'] });
    expect(report.failures.find((f) => f.check === 'abi')?.message).toMatch(
      /reports kernel ABI 1; this kit checks ABI 2/,
    );
    expect(report.failures.find((f) => f.check === 'exp')?.message).toMatch(
      /declined \(no exp here\), but exp is a primitive: every device must run it/,
    );
  });
});
