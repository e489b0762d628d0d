/**
 * backend-cpu's WebAssembly SIMD kernels against TensorFlow.js's wasm backend (XNNPACK, 128-bit
 * SIMD, one thread in Node) and against backend-cpu's own TypeScript kernels, in one process:
 * sgemm 256, 512 and 1024 on one thread (goal: SIMD >= 1.2x tfjs-wasm). The MNIST MLP training
 * step against tfjs-wasm, which these kernels serve, is measured with the executor, in
 * `npm run bench:train -w packages/scheduler`.
 *
 *   npm run bench -w packages/backend-cpu
 *
 * Prints a table of medians and ratios and writes bench-results/simd.json with the CPU model and
 * its vector extensions (figures from AVX2 and AVX-512 machines differ).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { CpuDevice, wasmSimdAvailable } from '@kiln/backend-cpu';
import { Prng } from '@kiln/ir';
import { singleOpSubgraph } from '@kiln/ir/conformance';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { agree, measurePair } from './harness.js';
import { kilnSide, tfjsSide } from './sides.js';

tf.enableProdMode();
setWasmPaths(
  `${join(dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm')), '/')}`,
);
await tf.setBackend('wasm');
await tf.ready();
if (!wasmSimdAvailable()) throw new Error('this runtime has no WebAssembly SIMD: nothing to measure');

const simd = new CpuDevice({ name: 'cpu:simd' });
const typescript = new CpuDevice({ name: 'cpu:ts', simd: false });

interface Row {
  readonly case: string;
  readonly simdMs: number;
  readonly typescriptMs: number;
  readonly tfjsWasmMs: number;
  readonly vsTfjsWasm: number;
  readonly vsTypescript: number;
  readonly goal: number;
}
const rows: Row[] = [];

const random = (seed: number, n: number) => {
  const rng = new Prng(seed);
  return Float32Array.from({ length: n }, () => rng.normal());
};

for (const n of [256, 512, 1024]) {
  const a = random(n, n * n);
  const b = random(n + 1, n * n);
  const t = { dtype: 'float32' as const, shape: [n, n] };
  const sub = singleOpSubgraph('matmul', [t, t], { transposeA: false, transposeB: false });
  const onSimd = kilnSide(simd, sub, [a, b]);
  const onTypescript = kilnSide(typescript, sub, [a, b]);
  const peer = tfjsSide([a, b], [t.shape, t.shape], (x, y) => tf.matMul(x!, y!));
  const check = agree(onSimd.result(), peer.result(), 2e-6 * n, 1e-4);
  if (!check.ok) throw new Error(`sgemm ${n}: kiln and tfjs-wasm disagree: ${check.message}`);
  const budget = { rounds: 4, time: 0, iterations: n >= 1024 ? 3 : 10, warmup: 2 };
  const vsPeer = measurePair(budget, onSimd, peer);
  const vsTs = measurePair({ ...budget, iterations: n >= 1024 ? 1 : 3 }, onSimd, onTypescript);
  rows.push({
    case: `sgemm ${n}`,
    simdMs: vsPeer.kiln.median,
    typescriptMs: vsTs.tfjs.median,
    tfjsWasmMs: vsPeer.tfjs.median,
    vsTfjsWasm: vsPeer.tfjs.median / vsPeer.kiln.median,
    vsTypescript: vsTs.tfjs.median / vsTs.kiln.median,
    goal: 1.2,
  });
  for (const side of [onSimd, onTypescript, peer]) side.dispose();
  console.log(`sgemm ${n}: done (${check.message})`);
}

const model = cpus()[0]?.model ?? 'unknown CPU';
const flags = cpuFlags();
console.table(
  rows.map((r) => ({
    case: r.case,
    'SIMD ms': r.simdMs.toFixed(2),
    'TypeScript ms': r.typescriptMs.toFixed(2),
    'tfjs-wasm ms': r.tfjsWasmMs.toFixed(2),
    'vs tfjs-wasm': `${r.vsTfjsWasm.toFixed(2)}x (goal ${r.goal}x)`,
    'vs TypeScript': `${r.vsTypescript.toFixed(1)}x`,
  })),
);
console.log(
  `medians; ${model} (${cpus().length} cores; ${flags.join(', ') || 'no AVX'}), Node ${process.version}`,
);
const dir = new URL('../bench-results/', import.meta.url);
mkdirSync(dir, { recursive: true });
writeFileSync(
  new URL('simd.json', dir),
  `${JSON.stringify({ bench: 'simd', date: new Date().toISOString(), node: process.version, cpu: model, cores: cpus().length, vectorExtensions: flags, rows }, null, 2)}\n`,
);

/** The CPU's vector extensions, from /proc/cpuinfo where there is one. */
function cpuFlags(): string[] {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('flags'));
    const have = new Set(line?.split(':')[1]?.trim().split(/\s+/) ?? []);
    return ['avx2', 'fma', 'avx512f'].filter((f) => have.has(f));
  } catch {
    return [];
  }
}
