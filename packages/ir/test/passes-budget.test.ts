import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { add, eliminateDeadCode, foldConstants, Graph, less, mul, tensor, whileLoop } from '@kiln/ir';
import { describe, expect, it } from 'vitest';
import { longLoop } from './fixtures/hostile-graphs.js';

/**
 * Constant folding runs graphs it did not write, synchronously, at compile time. It must have a
 * budget (loop iterations, nested loops included; work; bytes, intermediates included) and give up
 * folding, never hang or allocate without bound.
 */

const ops = (g: { nodes: readonly { op: string }[] }) => g.nodes.map((n) => n.op);

/** Optimizes a hostile graph in a child process, killed if it is still folding after a minute. */
async function foldInChild(name: string): Promise<string[]> {
  const fixture = new URL('./fixtures/fold-in-child.ts', import.meta.url).pathname;
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--conditions=@kiln/source', '--import', 'tsx', fixture, name],
    { timeout: 60_000, killSignal: 'SIGKILL' },
  );
  return JSON.parse(stdout) as string[];
}

describe('the folding budget', () => {
  // Without a budget these hang or allocate gigabytes inside a synchronous pass, which no test
  // timeout can interrupt in its own thread: each runs in a child process instead.
  it.each([
    ['a loop on constants whose body holds an endless loop', 'nestedEndlessLoop'],
    ['a 4 GiB intermediate inside a loop (refused before it is allocated)', 'hugeIntermediate'],
    ['a loop of 2^15 iterations', 'longLoop'],
  ])(
    'gives up on %s and leaves the loop unfolded',
    async (_, name) => {
      expect(await foldInChild(name)).toContain('while');
    },
    90_000,
  );

  it('folds the long loop to its result under a higher cap', () => {
    const { graph } = foldConstants(longLoop(), { maxIterations: 1 << 16 });
    expect(graph.nodes.find((n) => n.op === 'while')).toBeUndefined();
  });

  it('counts nested loops against one cap, and still folds loops within it', () => {
    const g = new Graph();
    const [n] = whileLoop(
      g,
      [tensor(g, [0], [], 'int32')],
      (i) => less(i, 10),
      (i) => {
        const [j] = whileLoop(
          i.graph,
          [mul(i, 0)],
          (k) => less(k, 10),
          (k) => [add(k, 1)],
        );
        return [add(add(i, mul(j!, 0)), 1)];
      },
    );
    g.output('n', n!);
    // 10 outer and 100 inner iterations: folds under a cap of 110, not under 109.
    const whiles = (maxIterations: number) =>
      ops(eliminateDeadCode(foldConstants(g, { maxIterations }).graph).graph).filter((op) => op === 'while');
    expect(whiles(110)).toHaveLength(0);
    expect(whiles(109)).toHaveLength(1);
  });

  it('shares one work budget across the pass: past it, the rest stays unfolded', () => {
    const g = new Graph();
    for (let k = 0; k < 4; k++) g.output(`y${k}`, mul(tensor(g, new Array(1000).fill(k), [1000]), 2));
    const folded = eliminateDeadCode(foldConstants(g, { maxWork: 2500 }).graph).graph;
    // Each multiply costs 1000 units: two fit in 2500, the others are left for the device.
    expect(ops(folded).filter((op) => op === 'mul')).toHaveLength(2);
  });
});
