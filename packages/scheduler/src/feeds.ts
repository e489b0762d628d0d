import {
  DTYPE_INFO,
  formatShape,
  type GraphData,
  HostTensor,
  KilnError,
  type NestedArray,
  type Node,
  placeholderNodes,
  SymbolicTensor,
  shapeMatches,
  type ValueId,
} from '@kiln/ir';

/** A value for a placeholder: a HostTensor, or nested arrays (converted to its dtype). */
export type FeedValue = HostTensor | NestedArray;
/** Feeds by placeholder name, or by the placeholder's tensor. */
export type Feeds = Readonly<Record<string, FeedValue>> | ReadonlyMap<SymbolicTensor | string, FeedValue>;

const feedError = (message: string) => new KilnError('feed', message);

function describePlaceholder(node: Node): string {
  const shape = formatShape(node.attrs.shape as (number | null)[]);
  return `placeholder '${String(node.attrs.name)}' (${DTYPE_INFO[node.attrs.dtype as HostTensor['dtype']].short}${shape})`;
}

function toHostTensor(node: Node, value: FeedValue): HostTensor {
  const dtype = node.attrs.dtype as HostTensor['dtype'];
  if (value instanceof HostTensor) {
    if (value.dtype !== dtype)
      throw feedError(`feed for ${describePlaceholder(node)} has dtype ${value.dtype}`);
    return value;
  }
  if (ArrayBuffer.isView(value)) {
    throw feedError(
      `feed for ${describePlaceholder(node)} is a bare typed array; wrap it: new HostTensor(dtype, shape, data)`,
    );
  }
  try {
    return HostTensor.from(value, dtype);
  } catch (e) {
    throw feedError(`feed for ${describePlaceholder(node)}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/**
 * Resolves and checks feeds: every key must name a placeholder of the graph, every value must
 * have its dtype and fit its shape (unknown dimensions match any size). Missing feeds are
 * checked per run against the placeholders the fetches actually need.
 */
export function resolveFeeds(graph: GraphData, feeds: Feeds | undefined): Map<ValueId, HostTensor> {
  if (
    feeds !== undefined &&
    !(feeds instanceof Map) &&
    (typeof feeds !== 'object' || feeds === null || Array.isArray(feeds))
  )
    throw feedError(
      `feeds must be a record or a Map from placeholder names (or tensors) to values, got ${feeds === null ? 'null' : Array.isArray(feeds) ? 'an array' : typeof feeds}`,
    );
  const byName = new Map(placeholderNodes(graph).map((n) => [n.attrs.name as string, n]));
  const entries: [SymbolicTensor | string, FeedValue][] =
    feeds === undefined ? [] : feeds instanceof Map ? [...feeds.entries()] : Object.entries(feeds);
  const out = new Map<ValueId, HostTensor>();
  for (const [key, value] of entries) {
    let node: Node | undefined;
    if (key instanceof SymbolicTensor) {
      node = key.node.op === 'placeholder' && graph.nodes[key.node.id] === key.node ? key.node : undefined;
      if (!node) throw feedError(`feed key ${key} is not a placeholder of this graph`);
    } else {
      node = byName.get(key);
      if (!node) {
        const known = [...byName.keys()];
        throw feedError(
          `'${key}' is not a placeholder of this graph; placeholders: ${known.length ? known.join(', ') : '(none)'}`,
        );
      }
    }
    const tensor = toHostTensor(node, value);
    const pattern = node.attrs.shape as (number | null)[];
    if (!shapeMatches(tensor.shape, pattern)) {
      throw feedError(`feed for ${describePlaceholder(node)} has shape ${formatShape(tensor.shape)}`);
    }
    if (out.has(node.outputs[0]!)) throw feedError(`${describePlaceholder(node)} is fed twice`);
    out.set(node.outputs[0]!, tensor);
  }
  return out;
}

export function missingFeedError(graph: GraphData, node: Node, fetchNames: string): KilnError {
  const fed = placeholderNodes(graph).map((n) => `'${String(n.attrs.name)}'`);
  return feedError(
    `missing feed for ${describePlaceholder(node)}, needed by ${fetchNames} (the graph's placeholders: ${fed.join(', ')})`,
  );
}
