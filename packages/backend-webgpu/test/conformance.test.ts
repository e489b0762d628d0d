import { EXECUTOR_OPS, OP_NAMES, type OpName } from '@kiln/ir';
import { formatReport, runConformance } from '@kiln/ir/conformance';
import { describe, expect, it } from 'vitest';
import { newDevice, noAdapter } from './gpu.js';

/** KILN_WEBGPU_OPS=add,matmul runs the kit on those ops only, when working on a kernel. */
const only = process.env.KILN_WEBGPU_OPS?.split(',') as OpName[] | undefined;

// The one line a run without an adapter prints (the other GPU suites skip silently, with the reason in their names).
if (noAdapter !== null)
  console.warn(`backend-webgpu: no WebGPU adapter here, GPU tests skipped: ${noAdapter}`);

describe.skipIf(noAdapter !== null)(
  `backend-webgpu conformance${noAdapter ? ` (skipped: ${noAdapter})` : ''}`,
  () => {
    it('passes the conformance kit for every op on the real adapter', async () => {
      const device = await newDevice();
      try {
        const report = await runConformance(device, only ? { ops: only } : {});
        console.log(`${formatReport({ ...report, failures: [], unsupported: [] })} (${device.adapterInfo})`);
        if (report.failures.length > 0 || report.unsupported.length > 0) console.error(formatReport(report));
        expect(report.failures).toEqual([]);
        expect(report.unsupported).toEqual([]);
        if (!only)
          expect(report.cases).toBeGreaterThan(OP_NAMES.filter((op) => !EXECUTOR_OPS.has(op)).length * 4);
      } finally {
        device.dispose();
      }
    }, 300_000);
  },
);
