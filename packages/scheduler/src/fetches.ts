import { type Graph, type HostTensor, KilnError, SymbolicTensor, type ValueId } from '@kiln/ir';

/** What Session.run can fetch: a tensor, a name, or arrays and records of those. */
export type Fetch = SymbolicTensor | string;
export type Fetches = Fetch | readonly Fetch[] | Readonly<Record<string, Fetch>>;
export type FetchResult<F> = F extends Fetch
  ? HostTensor
  : F extends readonly Fetch[]
    ? HostTensor[]
    : { [K in keyof F]: HostTensor };

/**
 * Flattens a fetch structure into value ids, and gives back a function that rebuilds the same
 * structure from the fetched tensors.
 */
export function flattenFetches(
  graph: Graph,
  fetches: Fetches,
): { ids: ValueId[]; labels: string[]; rebuild: (ts: HostTensor[]) => unknown } {
  const resolve = (f: Fetch, where: string): ValueId => {
    if (f instanceof SymbolicTensor) {
      if (f.graph !== graph && graph.values[f.id]?.type !== f.type) {
        throw new KilnError('invalid-argument', `fetch ${f} belongs to another graph`);
      }
      return f.id;
    }
    if (typeof f === 'string') return graph.tensor(f).id;
    throw cannotFetch(f, where);
  };
  const label = (f: Fetch) => (typeof f === 'string' ? `'${f}'` : `%${f.id}`);
  if (typeof fetches === 'string' || fetches instanceof SymbolicTensor) {
    return { ids: [resolve(fetches, '')], labels: [label(fetches)], rebuild: (ts) => ts[0] };
  }
  if (Array.isArray(fetches)) {
    const list = fetches as readonly Fetch[];
    return {
      ids: list.map((f, i) => resolve(f, ` (element ${i})`)),
      labels: list.map(label),
      rebuild: (ts) => ts,
    };
  }
  if (!isRecord(fetches)) throw cannotFetch(fetches, '');
  const entries = Object.entries(fetches as Record<string, Fetch>);
  return {
    ids: entries.map(([k, f]) => resolve(f, ` (key '${k}')`)),
    labels: entries.map(([k]) => `'${k}'`),
    rebuild: (ts) => Object.fromEntries(entries.map(([k], i) => [k, ts[i]])),
  };
}

function isRecord(x: unknown): boolean {
  if (typeof x !== 'object' || x === null) return false;
  const proto = Object.getPrototypeOf(x);
  return proto === Object.prototype || proto === null;
}

function cannotFetch(f: unknown, where: string): KilnError {
  const what =
    f === null || f === undefined
      ? String(f)
      : typeof f === 'object'
        ? `a ${f.constructor?.name ?? 'object'}`
        : `${String(f)} (a ${typeof f})`;
  return new KilnError(
    'invalid-argument',
    `cannot fetch ${what}${where}: pass a tensor, a name, or arrays/records of them`,
  );
}
