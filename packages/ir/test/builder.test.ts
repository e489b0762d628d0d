import { add, Graph, KilnError, matmul, printGraph, relu, verifyGraph } from '@kiln/ir';
import { describe, expect, it } from 'vitest';

describe('Graph builder', () => {
  it('infers shapes with unknown batch dimensions and prints one line per node', () => {
    const g = new Graph();
    const x = g.placeholder('float32', [null, 3], 'x');
    const w = g.variable('w', g.constant({ dtype: 'float32', shape: [3, 2], data: new Float32Array(6) }));
    const y = g.scope('dense', () => relu(add(matmul(x, w), 1)));
    expect(y.shape).toEqual([null, 2]);
    expect(y.dtype).toBe('float32');
    verifyGraph(g);
    const text = printGraph(g);
    expect(text).toContain('matmul(%0, %2)');
    expect(text).toContain('# dense/relu');
    expect(text.split('\n')).toHaveLength(g.nodes.length + 3);
  });

  it('names the op, the node and both shapes on a mismatch', () => {
    const g = new Graph();
    const a = g.placeholder('float32', [2, 3], 'a');
    const b = g.placeholder('float32', [4, 5], 'b');
    const err = (() => {
      try {
        matmul(a, b, { name: 'bad' });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(KilnError);
    expect((err as KilnError).code).toBe('shape');
    expect((err as Error).message).toMatch(/node #2 \(matmul 'bad'\).*f32\[2,3\] and f32\[4,5\]/);
  });
});
