import { type Device, KERNEL_ABI_VERSION, type Support } from '../abi/device.js';
import { KilnError } from '../errors.js';
import { Graph } from '../graph/builder.js';
import { interpret } from '../graph/interpret.js';
import type { Subgraph } from '../graph/subgraph.js';
import { extractSubgraph } from '../graph/subgraph.js';
import { EXECUTOR_OPS, isComposite, OP_NAMES, type OpName, opDef } from '../ops/index.js';
import type { ConcreteType, ConformanceCase } from '../ops/op-def.js';
import { expandComposites, type SupportOracle } from '../passes/expand.js';
import { Prng } from '../prng.js';
import { formatType } from '../shape.js';
import { compareToReference } from './compare.js';
import { runOnDevice, singleOpSubgraph, toHost } from './run-case.js';
import { generateInput } from './values.js';

export { compareToReference, FLOAT32_ATOL, FLOAT32_RTOL } from './compare.js';
export { runOnDevice, singleOpSubgraph } from './run-case.js';
export { generateInput } from './values.js';

/**
 * The conformance kit: run it against a device and it checks, against the float64 reference
 * implementations, every primitive (a device must run them all: declining one is a failure), every
 * composite the device claims, and every composite's expansion down to primitives (what the device
 * runs for a composite it declines), on generated cases that include broadcasting, scalars, size-0
 * and size-1 dimensions, NaN and infinities; then the ABI version, memory and the misuse contract.
 * Every tensor is bound at an offset inside a guarded arena, so out-of-bounds writes are caught
 * too. A failure names the check ("softmax", "softmax (expanded)", a system check), the case and
 * what differed.
 *
 *   const report = await runConformance(device);
 *   if (report.failures.length) console.error(formatReport(report));
 */
export interface ConformanceOptions {
  readonly seed?: number;
  /** Check only these ops (default: every op a device may receive). */
  readonly ops?: readonly OpName[];
  /**
   * Run the memory, multi-node and misuse checks too (default true). A suite that checks one op
   * per test turns them off there and runs them once, with `ops: []`.
   */
  readonly systemChecks?: boolean;
  readonly onProgress?: (op: OpName, cases: number) => void;
}

export interface ConformanceFailure {
  readonly check: string;
  readonly detail: string;
  readonly message: string;
}

export interface ConformanceReport {
  readonly device: string;
  readonly cases: number;
  readonly passed: number;
  readonly failures: ConformanceFailure[];
  /** Ops the device declined through `supports` (for some case), with its first reason. */
  readonly unsupported: { op: OpName; reason: string }[];
}

const describeCase = (op: string, inputs: readonly ConcreteType[], attrs: object) =>
  `${op}(${inputs.map(formatType).join(', ')}) ${JSON.stringify(attrs, (_, v) => (ArrayBuffer.isView(v) ? `<${(v as Float32Array).length} values>` : v))}`;

export async function runConformance(
  device: Device,
  options: ConformanceOptions = {},
): Promise<ConformanceReport> {
  const rng = new Prng(options.seed ?? 20261125);
  const ops = options.ops ?? OP_NAMES.filter((op) => !EXECUTOR_OPS.has(op));
  const failures: ConformanceFailure[] = [];
  const unsupported: { op: OpName; reason: string }[] = [];
  let cases = 0;
  let passed = 0;
  if (device.abi !== KERNEL_ABI_VERSION) {
    cases++;
    failures.push({
      check: 'abi',
      detail: '',
      message: `the device reports kernel ABI ${String(device.abi)}; this kit checks ABI ${KERNEL_ABI_VERSION}`,
    });
  }
  // The expansions are checked down to primitives: every composite inside one is expanded too.
  const primitivesOnly: SupportOracle = {
    name: device.name,
    supports: (q) =>
      isComposite(q.op) ? { ok: false, reason: 'the kit checks its expansion' } : device.supports(q),
  };

  for (const op of ops) {
    const def = opDef(op);
    const composite = isComposite(op);
    const opCases = def.cases(rng) as ConformanceCase<Record<string, unknown>>[];
    let declined = 0;
    for (const c of opCases) {
      const types = c.inputs.map((i) => ({ dtype: i.dtype, shape: i.shape }));
      const detail = describeCase(op, types, c.attrs);
      const fail = (check: string, e: unknown) =>
        failures.push({ check, detail, message: e instanceof Error ? e.message : String(e) });
      let subgraph: Subgraph;
      let support: Support;
      try {
        subgraph = singleOpSubgraph(op, types, c.attrs);
        const node = subgraph.nodes[subgraph.nodes.length - 1]!;
        const outputs = node.outputs.map((v) => subgraph.values[v]!.type as ConcreteType);
        support = device.supports({ op, attrs: node.attrs, inputs: types, outputs });
      } catch (e) {
        cases++;
        fail(op, e);
        continue;
      }
      const attrs = subgraph.nodes[subgraph.nodes.length - 1]!.attrs;
      const factor = Math.max(1, def.tolerance?.(types, attrs) ?? 1);
      // Runs one form of the case (the op as claimed, or its expansion) against the reference.
      const check = async (label: string, form: () => Subgraph) => {
        cases++;
        try {
          const refs = c.inputs.map((input) => generateInput(rng, input));
          const want = def.reference(refs, attrs);
          const got = await runOnDevice(device, form(), refs.map(toHost));
          const problems = want
            .map((w, k) => compareToReference(got[k]!, w, factor))
            .filter((m) => m !== null);
          if (problems.length > 0) failures.push({ check: label, detail, message: problems.join('; ') });
          else passed++;
        } catch (e) {
          fail(label, e);
        }
      };
      if (support.ok) await check(op, () => subgraph);
      else {
        if (declined++ === 0) unsupported.push({ op, reason: support.reason });
        if (!composite) {
          cases++;
          fail(op, `declined (${support.reason}), but ${op} is a primitive: every device must run it`);
        }
      }
      if (composite)
        await check(`${op} (expanded)`, () => expandComposites(subgraph, primitivesOnly).subgraph);
    }
    options.onProgress?.(op, opCases.length);
  }

  for (const [check, fn] of options.systemChecks === false ? [] : Object.entries(SYSTEM_CHECKS)) {
    cases++;
    try {
      await fn(device, rng);
      passed++;
    } catch (e) {
      failures.push({ check, detail: '', message: e instanceof Error ? e.message : String(e) });
    }
  }
  return { device: device.name, cases, passed, failures, unsupported };
}

export function formatReport(report: ConformanceReport): string {
  const lines = [`${report.device}: ${report.passed}/${report.cases} conformance cases passed`];
  // A declined composite is the normal case (it runs as its expansion): one line for all of them.
  const expanded = report.unsupported.filter((u) => isComposite(u.op)).map((u) => u.op);
  if (expanded.length > 0) lines.push(`  runs as expansions (declined composites): ${expanded.join(', ')}`);
  for (const u of report.unsupported)
    if (!isComposite(u.op)) lines.push(`  declined primitive ${u.op}: ${u.reason}`);
  for (const f of report.failures.slice(0, 40))
    lines.push(`  FAIL ${f.check} ${f.detail}\n       ${f.message}`);
  if (report.failures.length > 40) lines.push(`  ... and ${report.failures.length - 40} more failures`);
  return lines.join('\n');
}

const expect = (cond: boolean, message: string) => {
  if (!cond) throw new Error(message);
};

async function expectKilnError(what: string, fn: () => unknown): Promise<void> {
  try {
    await fn();
  } catch (e) {
    expect(e instanceof KilnError, `${what} threw ${String(e)}, not a KilnError`);
    return;
  }
  throw new Error(`${what} did not fail`);
}

/** Behaviour beyond single ops: memory, multi-node subgraphs, and errors on misuse. */
const SYSTEM_CHECKS: Record<string, (device: Device, rng: Prng) => Promise<void>> = {
  'memory round trip at offsets': async (device) => {
    const buf = device.allocate(64);
    const data = Uint8Array.from({ length: 20 }, (_, i) => i * 7 + 1);
    await device.write(buf, 12, data);
    const back = await device.read(buf, 12, 20);
    expect(
      back.every((x, i) => x === data[i]),
      'bytes read back differ from bytes written',
    );
    device.free(buf);
    device.free(device.allocate(0));
  },
  'a view shows the bytes in place, where the device lends them': async (device) => {
    if (!device.view) return;
    const buf = device.allocate(32);
    try {
      await device.write(
        buf,
        0,
        Uint8Array.from({ length: 32 }, (_, i) => i),
      );
      const seen = device.view(buf, 8, 16);
      expect(seen.byteLength === 16 && seen[0] === 8 && seen[15] === 23, 'the view shows other bytes');
      // In place: a later write shows through it (which is why callers copy before the next run).
      await device.write(buf, 8, Uint8Array.of(99));
      expect(seen[0] === 99, 'the view is a copy, not the bytes in place');
      await expectKilnError('a view past the end', () => device.view!(buf, 24, 16));
    } finally {
      device.free(buf);
    }
    await expectKilnError('a view of a freed buffer', () => device.view!(buf, 0, 4));
  },
  'use of a freed buffer is a KilnError': async (device) => {
    const buf = device.allocate(16);
    device.free(buf);
    await expectKilnError('read after free', () => device.read(buf, 0, 4));
  },
  'out-of-range read is a KilnError': async (device) => {
    const buf = device.allocate(16);
    try {
      await expectKilnError('read past the end', () => device.read(buf, 8, 16));
    } finally {
      device.free(buf);
    }
  },
  'multi-node subgraph matches the reference': async (device, rng) => {
    const g = new Graph();
    const x = g.placeholder('float32', [5, 7], 'x');
    const w = g.placeholder('float32', [7, 3], 'w');
    const [h] = g.apply('matmul', [x, w], {});
    const [b] = g.apply(
      'add',
      [h!, g.constant({ dtype: 'float32', shape: [3], data: new Float32Array([0.5, -1, 2]) })],
      {},
    );
    const [r] = g.apply('relu', [b!], {});
    const [s] = g.apply('softmax', [r!], {});
    const [m] = g.apply('sum', [s!], { axes: [0] });
    const types = [x, w].map((t) => t.type as ConcreteType);
    const { subgraph } = extractSubgraph(g, {
      nodes: g.nodes.map((n) => n.id).filter((id) => id > 1),
      bind: new Map([
        [x.id, types[0]!],
        [w.id, types[1]!],
      ]),
      results: [r!.id, m!.id],
    });
    const inputs = types.map((t) => generateInput(rng, t));
    const env = interpret(
      g,
      g.nodes.map((n) => n.id).filter((id) => id > 1),
      new Map([
        [x.id, inputs[0]!],
        [w.id, inputs[1]!],
      ]),
    );
    const got = await runOnDevice(device, expandComposites(subgraph, device).subgraph, inputs.map(toHost));
    const p1 = compareToReference(got[0]!, env.get(r!.id)!, 8);
    const p2 = compareToReference(got[1]!, env.get(m!.id)!, 16);
    expect(p1 === null && p2 === null, `${p1 ?? ''} ${p2 ?? ''}`);
  },
  'wrong number of bindings is a KilnError': async (device) => {
    const sub = singleOpSubgraph(
      'add',
      [
        { dtype: 'float32', shape: [2] },
        { dtype: 'float32', shape: [2] },
      ],
      {},
    );
    const exe = await device.compile(sub);
    const buf = device.allocate(8);
    try {
      const view = { buffer: buf, byteOffset: 0, dtype: 'float32' as const, shape: [2] };
      await expectKilnError('run with one input for two', () => exe.run([view], [view]));
    } finally {
      device.free(buf);
      exe.dispose();
    }
  },
  'a view of the wrong type is a KilnError': async (device) => {
    const sub = singleOpSubgraph('exp', [{ dtype: 'float32', shape: [4] }], {});
    const exe = await device.compile(sub);
    const buf = device.allocate(16);
    try {
      const good = { buffer: buf, byteOffset: 0, dtype: 'float32' as const, shape: [4] };
      await expectKilnError('run with a shape-[3] view for shape [4]', () =>
        exe.run([{ ...good, shape: [3] }], [good]),
      );
      await expectKilnError('run with a view past the end of its buffer', () =>
        exe.run([{ ...good, byteOffset: 8 }], [good]),
      );
    } finally {
      device.free(buf);
      exe.dispose();
    }
  },
};
