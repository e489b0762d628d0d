import type { WebGpuDevice } from '@kiln/backend-webgpu';
import { EXECUTOR_OPS, isComposite, OP_NAMES, type OpName } from '@kiln/ir';
import { type ConformanceReport, formatReport, runConformance } from '@kiln/ir/conformance';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LIMITS, newDevice, noAdapter, within } from './gpu.js';

/** KILN_WEBGPU_OPS=add,matmul runs the kit on those ops only, when working on a kernel. */
const only = process.env.KILN_WEBGPU_OPS?.split(',') as OpName[] | undefined;
const ops = only ?? OP_NAMES.filter((op) => !EXECUTOR_OPS.has(op));

// The one line a run without an adapter prints (the other GPU suites skip silently, with the reason
// in their names), naming the script that installs a CPU Vulkan driver, as Chromium's skips do.
if (noAdapter !== null)
  console.warn(
    `backend-webgpu: no WebGPU adapter here, GPU tests skipped: ${noAdapter}. ` +
      'To run them without a GPU, install Mesa lavapipe: bash .ci/install-webgpu-deps.sh (Debian, as root or with sudo)',
  );

describe.skipIf(noAdapter !== null)(
  `backend-webgpu conformance${noAdapter ? ` (skipped: ${noAdapter})` : ''}`,
  () => {
    // One op per test, so a failure or a hang names its op and a slow op has its own limit; one
    // device for all of them, so pipelines one op compiled (casts, copies, sums) serve the next.
    let device: WebGpuDevice;
    const total = { cases: 0, passed: 0 };
    beforeAll(async () => {
      device = await newDevice();
    });
    afterAll(() => device?.dispose());

    const check = (report: ConformanceReport) => {
      total.cases += report.cases;
      total.passed += report.passed;
      if (report.failures.length > 0 || report.unsupported.length > 0) console.error(formatReport(report));
      expect(report.failures).toEqual([]);
      // Fast paths are optional: only composites may be declined (they are checked expanded).
      expect(report.unsupported.filter((u) => !isComposite(u.op))).toEqual([]);
      expect(report.cases).toBeGreaterThan(0);
    };

    for (const op of ops) {
      const limit = LIMITS.conformanceOp(op);
      it(
        `${op} matches the reference on every case of the kit`,
        async () => {
          check(
            await within(limit, `the conformance kit on ${op}`, device, () =>
              runConformance(device, { ops: [op], systemChecks: false }),
            ),
          );
        },
        limit + LIMITS.backstop,
      );
    }

    it(
      'passes the kit’s memory, multi-node and misuse checks',
      async () => {
        const limit = LIMITS.conformanceOp('add');
        check(
          await within(limit, 'the conformance kit’s system checks', device, () =>
            runConformance(device, { ops: [] }),
          ),
        );
      },
      LIMITS.conformanceOp('add') + LIMITS.backstop,
    );

    it('ran every op the device may receive, on a real adapter', (context) => {
      if (total.cases === 0) return context.skip('no op of the kit ran (a filtered run)');
      console.log(
        `${device.name}: ${total.passed}/${total.cases} conformance cases passed (${device.adapterInfo})`,
      );
      if (!only) expect(total.cases).toBeGreaterThan(ops.length * 4);
      expect(total.passed).toBe(total.cases);
    });
  },
);
