import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CpuDevice } from '@kiln/backend-cpu';
import {
  Adam,
  add,
  type Device,
  Graph,
  HostTensor,
  heNormal,
  matmul,
  mean,
  Prng,
  relu,
  softmaxCrossEntropy,
  tensor,
} from '@kiln/ir';
import { singleOpSubgraph } from '@kiln/ir/conformance';
import { Session } from '@kiln/scheduler';
import { Bench } from 'tinybench';
import { addon, NativeDevice, unavailableReason } from '../src/index.js';

/**
 * backend-native against its peers, in one script (medians; the machine is shared and noisy):
 *   1. sgemm n x n, n = 256..1024, on 1 and 2 OpenBLAS threads: the native device's matmul kernel
 *      against OpenBLAS called from C (compiled here with the machine's gcc; goal >= 0.95x) and
 *      against backend-cpu's TypeScript kernel;
 *   2. one training step of the MNIST MLP 784-256-256-10 at batch 128 (Adam), Session on each device.
 * Prints tables and writes bench-results/native.json with the CPU model and its vector extensions.
 */
if (!addon) {
  console.log(unavailableReason);
  process.exit(0);
}
const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const flags = (/^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '').split(' ');
const vector = ['avx2', 'avx512f'].filter((f) => flags.includes(f)).join(' ') || 'no avx2/avx512';
const cpu = `${cpus()[0]?.model ?? 'unknown CPU'} (${cpus().length} cores; ${vector})`;
console.log(`backend-native benchmarks on ${cpu}, Node ${process.version}; ${addon.blas}`);

async function timeMs(run: () => Promise<unknown> | unknown, iterations: number): Promise<number> {
  const bench = new Bench({
    iterations,
    warmupIterations: 2,
    time: 0,
    warmupTime: 0,
    retainSamples: true,
    throws: true,
  });
  bench.add('run', run);
  await bench.run();
  const result = bench.tasks[0]!.result;
  if (!result || !('latency' in result) || !result.latency.samples) throw new Error('no samples');
  return median(result.latency.samples);
}

// OpenBLAS from C, built now from bench/sgemm.c.
const dir = mkdtempSync(join(tmpdir(), 'kiln-native-bench-'));
const cSgemm = join(dir, 'sgemm');
execFileSync('gcc', ['-O2', '-o', cSgemm, fileURLToPath(new URL('sgemm.c', import.meta.url)), '-lopenblas']);

/** The matmul kernel alone: compiled once, on buffers written once, run `runs` times. */
async function kernelMs(device: Device, n: number, runs: number): Promise<number> {
  const rng = new Prng(n);
  const type = { dtype: 'float32', shape: [n, n] } as const;
  const sub = singleOpSubgraph('matmul', [type, type], {});
  const exe = await device.compile(sub);
  const bytes = n * n * 4;
  const [a, b, c] = [0, 1, 2].map(() => device.allocate(bytes));
  await device.write(
    a!,
    0,
    Float32Array.from({ length: n * n }, () => rng.normal()),
  );
  await device.write(
    b!,
    0,
    Float32Array.from({ length: n * n }, () => rng.normal()),
  );
  const view = (buffer: typeof a) => ({ buffer: buffer!, byteOffset: 0, ...type });
  const ms = await timeMs(() => exe.run([view(a), view(b)], [view(c)]), runs);
  for (const buffer of [a, b, c]) device.free(buffer!);
  exe.dispose();
  return ms;
}

const gemm = [];
const cpuDevice = new CpuDevice();
for (const threads of [1, 2]) {
  addon.setThreads(threads);
  const native = new NativeDevice();
  for (const n of [256, 512, 1024]) {
    const runs = n >= 1024 ? 10 : 30;
    const fromC = Number(
      execFileSync(cSgemm, [String(n), String(runs), String(threads)], { encoding: 'utf8' }),
    );
    const kiln = await kernelMs(native, n, runs);
    const ts = threads === 1 && n <= 512 ? await kernelMs(cpuDevice, n, runs) : Number.NaN;
    gemm.push({ n, threads, kilnMs: kiln, cMs: fromC, cpuMs: ts, gflops: (2 * n ** 3) / (kiln / 1e3) / 1e9 });
  }
}
rmSync(dir, { recursive: true, force: true });
console.table(
  gemm.map((g) => ({
    n: g.n,
    threads: g.threads,
    'native ms': g.kilnMs.toFixed(3),
    'GFLOP/s': g.gflops.toFixed(1),
    'OpenBLAS from C ms': g.cMs.toFixed(3),
    'vs C (goal >= 0.95x)': `${(g.cMs / g.kilnMs).toFixed(2)}x`,
    'backend-cpu ms': Number.isNaN(g.cpuMs) ? '-' : g.cpuMs.toFixed(1),
    'vs backend-cpu': Number.isNaN(g.cpuMs) ? '-' : `${(g.cpuMs / g.kilnMs).toFixed(1)}x`,
  })),
);

// ---- the MLP training step
addon.setThreads(1);
function mlpStep(device: Device) {
  const g = new Graph();
  const x = g.placeholder('float32', [128, 784], 'x');
  const y = g.placeholder('float32', [128, 10], 'y');
  const dense = (h: typeof x, units: number, seed: number) => {
    const w = g.variable(`w${seed}`, heNormal(g, [h.shape[1] as number, units], { seed }));
    const b = g.variable(`b${seed}`, tensor(g, new Array(units).fill(0), [units]));
    return add(matmul(h, w), b);
  };
  const logits = dense(relu(dense(relu(dense(x, 256, 1)), 256, 2)), 10, 3);
  const loss = mean(softmaxCrossEntropy(logits, y));
  const train = new Adam({ learningRate: 1e-3 }).minimize(loss);
  const session = new Session(g, { device });
  const rng = new Prng(9);
  const feeds = {
    x: new HostTensor(
      'float32',
      [128, 784],
      Float32Array.from({ length: 128 * 784 }, () => rng.next()),
    ),
    y: new HostTensor(
      'float32',
      [128, 10],
      Float32Array.from({ length: 1280 }, (_, i) => (i % 10 === 3 ? 1 : 0)),
    ),
  };
  return () => session.run(loss, feeds, { targets: train });
}
const step = {
  nativeMs: await timeMs(mlpStep(new NativeDevice()), 20),
  cpuMs: await timeMs(mlpStep(new CpuDevice()), 20),
};
console.table([
  {
    device: 'backend-native (1 thread)',
    'ms per step': step.nativeMs.toFixed(1),
    'samples/s': Math.round(128 / (step.nativeMs / 1e3)),
  },
  {
    device: 'backend-cpu',
    'ms per step': step.cpuMs.toFixed(1),
    'samples/s': Math.round(128 / (step.cpuMs / 1e3)),
  },
]);
console.log(`MLP step: native / cpu = ${(step.cpuMs / step.nativeMs).toFixed(2)}x`);

mkdirSync(new URL('../bench-results/', import.meta.url), { recursive: true });
writeFileSync(
  new URL('../bench-results/native.json', import.meta.url),
  JSON.stringify({ cpu, node: process.version, blas: addon.blas, gemm, step }, null, 2),
);
process.exit(0);
