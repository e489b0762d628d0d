export {
  type DataParallel,
  type DataParallelOptions,
  dataParallel,
  replicaName,
  replicaScope,
} from './data-parallel.js';
export { type Replica, type ReplicaSpec, replicate } from './replicate.js';
export { bucketAllReduce, chunkBounds, chunkOwner, ringAllReduce } from './ring-all-reduce.js';
export { shardBatch } from './shard-batch.js';
