import { CpuDevice, wasmSimdAvailable } from '@kiln/backend-cpu';
import { EXECUTOR_OPS, isComposite, OP_NAMES } from '@kiln/ir';
import { formatReport, runConformance } from '@kiln/ir/conformance';
import { describe, expect, it } from 'vitest';

describe('backend-cpu conformance', () => {
  it('passes the conformance kit for every op, against the float64 reference', async () => {
    const device = new CpuDevice();
    const report = await runConformance(device);
    if (report.failures.length > 0) console.error(formatReport(report));
    expect(report.failures).toEqual([]);
    // Its fast paths are optional: what it declines is a composite, checked expanded (a declined
    // primitive is a failure above).
    expect(report.unsupported.filter((u) => !isComposite(u.op))).toEqual([]);
    // Every op a device can receive was exercised.
    expect(report.cases).toBeGreaterThan(OP_NAMES.filter((op) => !EXECUTOR_OPS.has(op)).length * 4);
  });

  it('runs matmul and the convolutions above on WebAssembly SIMD (Node has it)', () => {
    expect(wasmSimdAvailable()).toBe(true);
  });

  it('passes the same cases with every kernel in TypeScript (simd: false)', async () => {
    const report = await runConformance(new CpuDevice({ name: 'cpu:ts', simd: false }));
    if (report.failures.length > 0) console.error(formatReport(report));
    expect(report.failures).toEqual([]);
    expect(report.unsupported.filter((u) => !isComposite(u.op))).toEqual([]);
  });

  it('also conforms with SharedArrayBuffer memory and another seed', async () => {
    const report = await runConformance(new CpuDevice({ name: 'cpu:shared', shared: true }), { seed: 7 });
    if (report.failures.length > 0) console.error(formatReport(report));
    expect(report.failures).toEqual([]);
  });
});
