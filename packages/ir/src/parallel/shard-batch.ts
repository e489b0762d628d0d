import type { DType, HostArray } from '../dtype.js';
import { KilnError } from '../errors.js';
import type { GraphData } from '../graph/graph.js';
import { HostTensor, type NestedArray } from '../host-tensor.js';
import { formatShape } from '../shape.js';
import type { DataParallel } from './data-parallel.js';

const fail = (message: string) => new KilnError('feed', message);

/** A feed given as nested arrays (as Session.run takes them), in its placeholder's dtype. */
function fromNested(value: NestedArray, name: string, replica: string, graph: GraphData): HostTensor {
  const placeholder = graph.nodes.find((n) => n.op === 'placeholder' && n.attrs.name === replica);
  const dtype = (placeholder?.attrs.dtype as DType | undefined) ?? 'float32';
  try {
    return HostTensor.from(value, dtype);
  } catch (e) {
    throw fail(`shardBatch: the feed for '${name}': ${e instanceof Error ? e.message : String(e)}`);
  }
}

/**
 * Turns the feeds of one global batch (HostTensors, or nested arrays as Session.run takes) into a
 * data-parallel graph's feeds: each sharded feed is
 * split along dimension 0 into equal, contiguous per-replica parts (views on the same memory, not
 * copies); an unsharded feed is given to every replica as it is. Replica r gets rows
 * [r*B/n, (r+1)*B/n), the order the single-device loss averages them in. With micro-batches the
 * parts are the K micro-batches, micro-batch k getting rows [k*B/K, (k+1)*B/K).
 */
export function shardBatch(
  feeds: Readonly<Record<string, HostTensor | NestedArray>>,
  dp: Pick<DataParallel, 'feeds' | 'shard' | 'graph' | 'microBatches'>,
): Record<string, HostTensor> {
  const shard = new Set(dp.shard);
  for (const name of Object.keys(feeds))
    if (!dp.feeds.has(name))
      throw fail(
        `shardBatch: a feed for '${name}', which is no placeholder of the forward graph` +
          `; its placeholders: ${[...dp.feeds.keys()].join(', ') || 'none'}`,
      );
  const out: Record<string, HostTensor> = {};
  for (const [name, perReplica] of dp.feeds) {
    const given = feeds[name];
    if (given === undefined) throw fail(`shardBatch: no feed for placeholder '${name}'`);
    const feed = given instanceof HostTensor ? given : fromNested(given, name, perReplica[0]!, dp.graph);
    const n = perReplica.length;
    if (!shard.has(name)) {
      for (const replicaName of perReplica) out[replicaName] = feed;
      continue;
    }
    const [batch, ...rest] = feed.shape;
    if (batch === undefined)
      throw fail(`shardBatch: the feed for '${name}' is a scalar; a sharded feed needs a batch dimension`);
    if (batch % n !== 0)
      throw fail(
        `shardBatch: the feed for '${name}' has shape ${formatShape(feed.shape)}; its batch of ${batch} ` +
          `does not split into ${n} equal parts (one per ${dp.microBatches === undefined ? 'replica' : 'micro-batch'})`,
      );
    const rows = batch / n;
    const stride = rest.reduce((a, b) => a * b, 1) * rows;
    perReplica.forEach((replicaName, r) => {
      const view = feed.data.subarray(r * stride, (r + 1) * stride) as HostArray;
      out[replicaName] = new HostTensor(feed.dtype, [rows, ...rest], view);
    });
  }
  return out;
}
