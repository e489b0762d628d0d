import { HostDevice, KilnError, REFERENCE_KERNELS } from '@kiln/ir';
import { formatReport, runConformance, singleOpSubgraph } from '@kiln/ir/conformance';
import { describe, expect, it } from 'vitest';

describe('HostDevice', () => {
  it('with the reference kernels is a complete device: the whole kit passes', async () => {
    const device = new HostDevice({ name: 'ref:0', kind: 'reference', kernels: REFERENCE_KERNELS });
    const report = await runConformance(device);
    if (report.failures.length > 0) console.error(formatReport(report));
    expect(report.failures).toEqual([]);
    expect(formatReport(report)).toMatch(/runs as expansions \(declined composites\): neg, abs/);
  });

  it('refuses to compile a node its table has no kernel for, naming the device and the op', () => {
    const { exp: _, ...partial } = REFERENCE_KERNELS;
    const device = new HostDevice({
      name: 'gap:0',
      kind: 'gap',
      kernels: partial as typeof REFERENCE_KERNELS,
    });
    expect(device.supports({ op: 'exp', attrs: {}, inputs: [], outputs: [] })).toEqual({
      ok: false,
      reason: 'no gap kernel for exp',
    });
    const sub = singleOpSubgraph('exp', [{ dtype: 'float32', shape: [2] }], {});
    expect(() => device.compileSync(sub)).toThrow(KilnError);
    expect(() => device.compileSync(sub)).toThrow(/gap:0 has no kernel for exp/);
  });
});
