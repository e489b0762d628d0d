/**
 * Disjoint sets over the integers 0..size-1, with path halving and union by size. The placer groups
 * nodes that must share a device (a variable with its readers and assigns) with it, as TensorFlow's
 * placer does, so a chain of colocation constraints costs near-constant time per node.
 */
export class UnionFind {
  private readonly parent: Int32Array;
  private readonly size: Int32Array;

  constructor(count: number) {
    this.parent = new Int32Array(count);
    this.size = new Int32Array(count).fill(1);
    for (let i = 0; i < count; i++) this.parent[i] = i;
  }

  get count(): number {
    return this.parent.length;
  }

  find(x: number): number {
    const p = this.parent;
    while (p[x]! !== x) {
      p[x] = p[p[x]!]!;
      x = p[x]!;
    }
    return x;
  }

  /**
   * Joins the sets of a and b; returns the new root. On equal sizes the smaller root wins, so the
   * representative does not depend on the order of calls beyond the sets themselves.
   */
  union(a: number, b: number): number {
    let ra = this.find(a);
    let rb = this.find(b);
    if (ra === rb) return ra;
    const sa = this.size[ra]!;
    const sb = this.size[rb]!;
    if (sa < sb || (sa === sb && rb < ra)) [ra, rb] = [rb, ra];
    this.parent[rb] = ra;
    this.size[ra] = sa + sb;
    return ra;
  }

  same(a: number, b: number): boolean {
    return this.find(a) === this.find(b);
  }

  /** Every set with more than `minSize - 1` members, each sorted ascending, ordered by smallest member. */
  groups(minSize = 1): number[][] {
    const byRoot = new Map<number, number[]>();
    for (let i = 0; i < this.parent.length; i++) {
      const r = this.find(i);
      let g = byRoot.get(r);
      if (!g) byRoot.set(r, (g = []));
      g.push(i);
    }
    return [...byRoot.values()].filter((g) => g.length >= minSize);
  }
}
