import { tidy } from 'kiln-tensor';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { inputs, MAX_STEPS, makeWeights } from '../src/cell.js';
import { compiled, eager, scripted, symbolic, traced } from '../src/styles.js';

afterEach(() => {
  vi.restoreAllMocks();
});

const maxDiff = (a: Float32Array, b: Float32Array) =>
  a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

describe('examples/four-styles', () => {
  it('symbolic, compile and script agree with eager on every input; trace only on its example', async () => {
    vi.spyOn(console, 'warn').mockImplementation(() => {});
    const w = makeWeights();
    const xs = inputs();
    const stepCounts = xs.map((x) =>
      tidy(() => {
        let n = 0;
        for (let h = x; n < MAX_STEPS && h.mul(h).sum().item() > 0.05; n++) h = h.matmul(w).tanh().mul(0.9);
        return n;
      }),
    );
    // The inputs really do take different numbers of steps.
    expect(new Set(stepCounts).size).toBeGreaterThan(1);

    const reference = await Promise.all(xs.map((x) => eager()(x, w)));
    for (const style of [symbolic(), compiled(), scripted()]) {
      for (const [i, x] of xs.entries()) expect(maxDiff(await style(x, w), reference[i]!)).toBeLessThan(1e-5);
    }
    const frozen = traced(xs[0]!, w);
    expect(maxDiff(await frozen(xs[0]!, w), reference[0]!)).toBeLessThan(1e-5);
    for (const [i, x] of xs.entries()) {
      if (stepCounts[i] !== stepCounts[0])
        expect(maxDiff(await frozen(x, w), reference[i]!)).toBeGreaterThan(1e-3);
    }
  });

  it('prints the side-by-side table', async () => {
    const { execFile } = await import('node:child_process');
    const { promisify } = await import('node:util');
    const { stdout } = await promisify(execFile)('npm', ['start', '--silent'], {
      cwd: new URL('..', import.meta.url).pathname,
    });
    expect(stdout).toMatch(/\| script +\| correct +\| correct +\| correct +\|/);
    expect(stdout).toMatch(/\| trace \(frozen loop\) \| correct +\| WRONG/);
  });
});
