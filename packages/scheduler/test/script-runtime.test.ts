import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CpuDevice } from '@kiln/backend-cpu';
import { add, greater, matmul, mul, neg, printGraph, relu, serializeGraph, sum, tanh } from '@kiln/ir';
import { memory, randomNormal, script, setDefaultDevice, type Tensor, tidy } from '@kiln/scheduler';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(() => {
  setDefaultDevice(new CpuDevice({ name: 'cpu:script' }));
});

const LIMIT = 0.05;
const STEPS = 40;

/** Valid eager code and valid script: a data-dependent loop and a data-dependent branch. */
function cell(h0: Tensor, w: Tensor): Tensor {
  let h = h0;
  let i = 0;
  while (sum(mul(h, h)).item() > LIMIT && i < STEPS) {
    h = mul(tanh(matmul(h, w)), 0.9);
    i = i + 1;
  }
  if (sum(h).item() > 0) {
    h = relu(h);
  } else {
    h = neg(h);
  }
  return add(h, 1);
}

const close = (a: ArrayLike<number>, b: ArrayLike<number>) =>
  Array.from(a).forEach((v, i) => expect(v).toBeCloseTo(b[i]!, 5));

describe('script on the executor', () => {
  const scripted = script(cell, { captures: { LIMIT, STEPS } });

  it('agrees with the eager function on random inputs, whichever branch and loop count they take', () => {
    const w = randomNormal([6, 6], { seed: 5, stddev: 0.3 });
    const before = memory().devices['cpu:script']?.tensors ?? 0;
    for (let seed = 0; seed < 12; seed++) {
      tidy(() => {
        const h0 = randomNormal([2, 6], { seed, stddev: 0.2 + seed * 0.3 });
        close((scripted(h0, w) as Tensor).dataSync(), cell(h0, w).dataSync());
      });
    }
    // One signature, compiled once; nothing leaked.
    expect(scripted.compiled).toBe(1);
    expect(memory().devices['cpu:script']!.tensors).toBe(before);
    expect(printGraph(scripted.lower({ dtype: 'float32', shape: [2, 6] }, w).graph)).toMatch(/while\(/);
  });

  it('runs its serialized graph in a fresh process with the same result', async () => {
    const h0 = randomNormal([2, 6], { seed: 3, stddev: 2 });
    const w = randomNormal([6, 6], { seed: 5, stddev: 0.3 });
    const lowered = scripted.lower(h0, w);
    const dir = await mkdtemp(join(tmpdir(), 'kiln-script-'));
    try {
      const file = join(dir, 'cell.kiln');
      await writeFile(file, serializeGraph(lowered.graph));
      const feeds = JSON.stringify({ h0: await h0.array(), w: await w.array() });
      const runner = new URL('./fixtures/run-graph-file.ts', import.meta.url).pathname;
      const { stdout } = await promisify(execFile)(process.execPath, [
        '--conditions=@kiln/source',
        '--import',
        'tsx',
        runner,
        file,
        'output',
        feeds,
      ]);
      close(JSON.parse(stdout) as number[], cell(h0, w).dataSync());
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('rejects what it cannot script when script() is called, quoting the line', () => {
    function bad(x: Tensor): Tensor {
      let y = x;
      do {
        y = mul(y, 2);
      } while (sum(y).item() < 10);
      return y;
    }
    // The test runner reformatted `bad` (types stripped): the error still quotes this file's line.
    expect(() => script(bad)).toThrow(
      /script 'bad': packages\/scheduler\/test\/script-runtime\.test\.ts:\d+:7: 'do \.\.\. while' is not supported; use while\n +\d+ \| do \{/,
    );
    expect(() => script((x: Tensor) => greater(x, 0))).not.toThrow();
  });
});
