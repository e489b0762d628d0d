import {
  cond,
  Graph,
  type GraphData,
  greater,
  interpret,
  optimize,
  Prng,
  passesFor,
  type RefTensor,
  refTensor,
  type SupportOracle,
  type SymbolicTensor,
  sum,
  tensor,
  tryBroadcastShapes,
  verifyGraph,
} from '@kiln/ir';
import { describe, expect, it } from 'vitest';

/**
 * The passes' contract, checked on random programs: an optimized graph computes what the original
 * does. Graphs mix elementwise ops with broadcasting, reductions, matmuls, layout ops, control
 * flow, and the patterns each pass looks for (identities, duplicates, constant arithmetic, chains
 * to fuse), on random shapes with size-1 dimensions; both are run by the reference interpreter.
 */

const UNARY = [
  'neg',
  'abs',
  'exp',
  'tanh',
  'sigmoid',
  'relu',
  'square',
  'sin',
  'cos',
  'floor',
  'round',
] as const;
const BINARY = ['add', 'sub', 'mul', 'div', 'maximum', 'minimum'] as const;

interface Made {
  readonly op: string;
  readonly ins: readonly SymbolicTensor[];
  readonly attrs: Record<string, unknown>;
}

class RandomProgram {
  readonly g = new Graph();
  readonly feeds = new Map<string, RefTensor>();
  /** float32 values to build on, most recent last. */
  readonly pool: SymbolicTensor[] = [];
  readonly made: Made[] = [];

  constructor(readonly rng: Prng) {}

  shape(maxRank = 3): number[] {
    return Array.from({ length: this.rng.int(0, maxRank) }, () =>
      this.rng.bool(0.3) ? 1 : this.rng.int(2, 4),
    );
  }

  values(n: number, scale = 2): number[] {
    return Array.from({ length: n }, () => Number((this.rng.normal() * scale).toFixed(3)));
  }

  input(shape: number[]): SymbolicTensor {
    const name = `in${this.feeds.size}`;
    const t = this.g.placeholder('float32', shape, name);
    this.feeds.set(name, refTensor('float32', shape, this.values(shape.reduce((a, b) => a * b, 1))));
    this.pool.push(t);
    return t;
  }

  constant(shape: readonly number[], fill?: number): SymbolicTensor {
    const n = shape.reduce((a, b) => a * b, 1);
    return tensor(this.g, fill === undefined ? this.values(n) : new Array(n).fill(fill), shape);
  }

  /** A pool value, the recent ones more likely. */
  pick(): SymbolicTensor {
    const n = this.pool.length;
    return this.pool[Math.max(0, n - 1 - Math.floor(this.rng.next() * this.rng.next() * n))]!;
  }

  apply(op: string, ins: readonly SymbolicTensor[], attrs: Record<string, unknown> = {}): SymbolicTensor {
    const [out] = this.g.apply(op as never, ins, attrs);
    this.made.push({ op, ins, attrs });
    if (out!.type.dtype === 'float32') this.pool.push(out!);
    return out!;
  }

  /** A partner for `a`: a pool value that broadcasts with it, or a constant that does. */
  partner(a: SymbolicTensor): SymbolicTensor {
    const fits = this.pool.filter((t) => t !== a && tryBroadcastShapes(t.shape, a.shape) !== null);
    if (fits.length > 0 && this.rng.bool(0.6)) return this.rng.pick(fits);
    const shape = a.shape as number[];
    const drop = this.rng.int(0, shape.length);
    return this.constant(shape.slice(drop).map((d) => (this.rng.bool(0.3) ? 1 : d)));
  }

  step(): void {
    const rng = this.rng;
    const a = this.pick();
    const shape = a.shape as number[];
    const kind = rng.int(0, 13);
    switch (kind) {
      case 0:
      case 1:
      case 2:
        this.apply(rng.pick(UNARY), [a]);
        return;
      case 3:
      case 4:
      case 5:
        this.apply(rng.pick(BINARY), rng.bool() ? [a, this.partner(a)] : [this.partner(a), a]);
        return;
      case 6: {
        // An identity the simplifier should remove, with a constant that does not enlarge a.
        const [op, k] = rng.pick([
          ['mul', 1],
          ['add', 0],
          ['sub', 0],
          ['div', 1],
        ] as const);
        const c = this.constant(
          shape.slice(rng.int(0, shape.length)).map(() => 1),
          k,
        );
        this.apply(op, op === 'sub' || op === 'div' || rng.bool() ? [a, c] : [c, a]);
        if (rng.bool(0.3)) this.apply('neg', [this.apply('neg', [a])]);
        return;
      }
      case 7: {
        // A duplicate of something already computed, for CSE.
        const m = rng.pick(this.made.length > 0 ? this.made : [{ op: 'relu', ins: [a], attrs: {} }]);
        this.apply(m.op, m.ins, m.attrs);
        return;
      }
      case 8: {
        // Layout round trips and no-ops.
        const rank = shape.length;
        const perm = () => Array.from({ length: rank }, (_, i) => i).sort(() => rng.next() - 0.5);
        const choice = rng.int(0, 3);
        if (choice === 0)
          this.apply('transpose', [this.apply('transpose', [a], { perm: perm() })], { perm: perm() });
        else if (choice === 1)
          this.apply('reshape', [this.apply('reshape', [a], { shape: [-1] })], { shape });
        else if (choice === 2) this.apply('broadcastTo', [a], { shape: rng.bool() ? shape : [2, ...shape] });
        else this.apply('cast', [a], { dtype: 'float32' });
        return;
      }
      case 9: {
        if (shape.length === 0) return;
        const op = rng.pick(['sum', 'mean', 'max'] as const);
        this.apply(op, [a], { axes: [rng.int(0, shape.length - 1)], keepDims: rng.bool() });
        return;
      }
      case 10: {
        if (shape.length < 2) {
          this.apply('reshape', [a], { shape: [1, -1] });
          return;
        }
        const k = shape[shape.length - 1]!;
        this.apply('matmul', [a, this.constant([k, rng.int(1, 4)])], {});
        return;
      }
      case 11: {
        // Comparisons, where and casts through int32.
        const b = this.partner(a);
        const c = this.apply('greater', [a, b]);
        if (rng.bool()) {
          this.apply('where', [c, a, b]);
        } else {
          const i = this.apply('cast', [a], { dtype: 'int32' });
          const j = this.apply('add', [i, tensor(this.g, [rng.int(-3, 3)], [], 'int32')]);
          this.apply('cast', [this.apply('where', [c, j, i])], { dtype: 'float32' });
        }
        return;
      }
      case 12: {
        // Constant arithmetic for the folder, joined to live values.
        const k = this.apply('mul', [
          this.constant([]),
          this.apply('add', [this.constant([]), this.constant([])]),
        ]);
        this.apply(rng.pick(BINARY), [a, k]);
        return;
      }
      default: {
        // Control flow whose branches hold patterns too.
        const [r] = cond(
          this.g,
          greater(sum(a), 0),
          [a],
          (t) => [t.mul(1).tanh().mul(2).add(0.5)],
          (t) => [t.neg().neg().relu().mul(t.relu())],
        );
        this.pool.push(r!);
      }
    }
  }
}

function evaluate(g: GraphData, feeds: ReadonlyMap<string, RefTensor>): Map<string, RefTensor> {
  const bound = new Map(
    g.nodes
      .filter((n) => n.op === 'placeholder')
      .map((n) => [n.outputs[0]!, feeds.get(n.attrs.name as string)!]),
  );
  const env = interpret(
    g,
    g.nodes.filter((n) => n.op !== 'placeholder').map((n) => n.id),
    bound,
  );
  return new Map(Object.entries(g.outputs).map(([k, v]) => [k, env.get(v)!]));
}

function close(got: RefTensor, want: RefTensor): string | null {
  if (got.dtype !== want.dtype || got.shape.join() !== want.shape.join())
    return `type ${got.dtype}[${got.shape}] vs ${want.dtype}[${want.shape}]`;
  for (let i = 0; i < got.data.length; i++) {
    const g = got.data[i]!;
    const w = want.data[i]!;
    const ok = Number.isFinite(w)
      ? Math.abs(g - w) <= 1e-6 + 1e-5 * Math.abs(w)
      : g === w || (Number.isNaN(g) && Number.isNaN(w));
    if (!ok) return `element ${i}: ${g} vs ${w}`;
  }
  return null;
}

const everything: SupportOracle = { name: 'every op', supports: () => ({ ok: true, seconds: 0 }) };

describe('optimized graphs compute what unoptimized ones do', () => {
  it('on 250 random graphs of 5-30 nodes and random inputs', () => {
    const rng = new Prng(20260601);
    const totals = { fused: 0, epilogues: 0, rewrites: 0, merged: 0, nodesBefore: 0, nodesAfter: 0 };
    for (let trial = 0; trial < 250; trial++) {
      const p = new RandomProgram(rng);
      for (let i = rng.int(1, 3); i > 0; i--) p.input(p.shape());
      const size = rng.int(5, 30);
      while (p.g.nodes.length < size) p.step();
      const outs = new Set([p.pool[p.pool.length - 1]!, p.pick(), p.pick()].slice(0, rng.int(1, 3)));
      [...outs].forEach((t, i) => p.g.output(`out${i}`, t));

      // As for a device that claims every node: fusion and the matmul epilogue pass both run.
      const { graph, report } = optimize(p.g, passesFor(everything));
      const where = `graph ${trial}`;
      expect(() => verifyGraph(graph), where).not.toThrow();
      const want = evaluate(p.g, p.feeds);
      const got = evaluate(graph, p.feeds);
      for (const [name, w] of want) expect(close(got.get(name)!, w), `${where} ${name}`).toBeNull();

      const detail = (pass: string) => report.find((r) => r.pass === pass)?.detail ?? '';
      totals.fused += Number.parseInt(detail('elementwise fusion'), 10);
      totals.epilogues += Number.parseInt(detail('matmul epilogue fusion'), 10);
      totals.rewrites += Number.parseInt(detail('algebraic simplification'), 10);
      totals.merged += Number.parseInt(detail('common-subexpression elimination'), 10);
      totals.nodesBefore += p.g.nodes.length;
      totals.nodesAfter += graph.nodes.length;
    }
    // Every pass had work to do across the run (a generator that never hits a pattern proves nothing).
    expect(totals.fused).toBeGreaterThan(100);
    expect(totals.epilogues).toBeGreaterThan(10);
    expect(totals.rewrites).toBeGreaterThan(100);
    expect(totals.merged).toBeGreaterThan(100);
    expect(totals.nodesAfter).toBeLessThan(totals.nodesBefore * 0.8);
  });
});
