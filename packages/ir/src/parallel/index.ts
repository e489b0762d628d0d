export {
  type DataParallel,
  type DataParallelOptions,
  dataParallel,
} from './data-parallel.js';
export { microBatchDevices } from './micro-batches.js';
export { microBatchName, microBatchScope, replicaName, replicaScope } from './naming.js';
export { type Replica, type ReplicaSpec, replicate, replicateVariables } from './replicate.js';
export {
  bucketAllReduce,
  chunkBounds,
  chunkOwner,
  RING_PIECE_ELEMENTS,
  type RingOptions,
  ringAllReduce,
} from './ring-all-reduce.js';
export { shardBatch } from './shard-batch.js';
