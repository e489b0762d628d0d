import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

/**
 * A runtime whose WebAssembly lacks SIMD runs every kernel in TypeScript. Such an engine refuses
 * the kernel module at validation; a process of its own stands in for one, its validate() made to
 * refuse before the package loads, so nothing of this process's state can fool the check.
 */
describe('backend-cpu without WebAssembly SIMD', () => {
  it('falls back to the TypeScript kernels and still computes matmul', () => {
    const script = `
      WebAssembly.validate = () => false;
      const { CpuDevice, wasmSimdAvailable } = await import('@kiln/backend-cpu');
      const { singleOpSubgraph, runOnDevice } = await import('@kiln/ir/conformance');
      const t = { dtype: 'float32', shape: [6, 6] };
      const eye = Float32Array.from({ length: 36 }, (_, i) => (i % 7 === 0 ? 1 : 0));
      const x = Float32Array.from({ length: 36 }, (_, i) => i);
      const sub = singleOpSubgraph('matmul', [t, t], { transposeA: false, transposeB: false });
      const [y] = await runOnDevice(new CpuDevice(), sub, [x, eye]);
      console.log(JSON.stringify({ simd: wasmSimdAvailable(), same: y.every((v, i) => v === x[i]) }));
    `;
    const run = spawnSync(
      process.execPath,
      ['--conditions=@kiln/source', '--import', 'tsx', '--input-type=module', '-e', script],
      { encoding: 'utf8', timeout: 60_000 },
    );
    expect(run.stderr.slice(0, 2000)).toBe('');
    expect(JSON.parse(run.stdout.trim())).toEqual({ simd: false, same: true });
  });
});
