import type { HostArray } from '../dtype.js';
import { KilnError } from '../errors.js';
import { HostTensor } from '../host-tensor.js';
import { formatShape } from '../shape.js';
import type { DataParallel } from './data-parallel.js';

const fail = (message: string) => new KilnError('feed', message);

/**
 * Turns the feeds of one global batch into a data-parallel graph's feeds: each sharded feed is
 * split along dimension 0 into equal, contiguous per-replica parts (views on the same memory, not
 * copies); an unsharded feed is given to every replica as it is. Replica r gets rows
 * [r*B/n, (r+1)*B/n), the order the single-device loss averages them in.
 */
export function shardBatch(
  feeds: Readonly<Record<string, HostTensor>>,
  dp: Pick<DataParallel, 'feeds' | 'shard'>,
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
    const feed = feeds[name];
    if (!feed) throw fail(`shardBatch: no feed for placeholder '${name}'`);
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
          `does not split into ${n} equal parts (one per replica)`,
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
