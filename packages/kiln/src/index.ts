/**
 * kiln-tensor: the public API, with the built-in CPU device as the default. This package holds no
 * logic of its own: it names, one by one, what a program needs from @kiln/ir and @kiln/scheduler,
 * and wires in @kiln/backend-cpu. Plugin authors import from 'kiln-tensor/plugin'; the packages
 * under it hold the internals (codecs, the wire protocol, test generators) for kiln's own use.
 */
import { CpuDevice, cpuPlugin } from '@kiln/backend-cpu';
import type { Graph, GraphData } from '@kiln/ir';
import {
  devices,
  Session as SchedulerSession,
  type SessionOptions,
  setDefaultDevice,
  setDefaultWorkerDevice,
} from '@kiln/scheduler';

export { CpuDevice, type CpuDeviceOptions, cpuPlugin, wasmSimdAvailable } from '@kiln/backend-cpu';
export type { Device, DevicePlugin } from '@kiln/ir';
// Values, dtypes, shapes and errors.
// The functional op API: every op, on eager tensors, symbolic tensors and traces alike.
// Symbolic graphs (TensorFlow 1.x style), control flow, autodiff, passes, files.
// Training: optimizers, initializers, gradient accumulation, data parallelism.
export {
  type Accumulation,
  Adam,
  type AdamOptions,
  accumulateGradients,
  argmax,
  argmin,
  avgPool,
  broadcastTo,
  CHECKPOINT_FRAME,
  type Checkpoint,
  type ConcreteShape,
  type Conv2dOptions,
  concat,
  cond,
  conv2d,
  type DataParallel,
  type DataParallelOptions,
  type Dim,
  type DType,
  dataParallel,
  decodeCheckpoint,
  deserializeGraph,
  encodeCheckpoint,
  formatPassReport,
  formatShape,
  Graph,
  type GraphData,
  gather,
  glorotUniform,
  gradients,
  type HostArray,
  HostTensor,
  heNormal,
  type InitOptions,
  KilnError,
  type KilnErrorCode,
  logSoftmax,
  type MatmulOptions,
  matmul,
  max,
  maxPool,
  mean,
  min,
  type NestedArray,
  type OneHotOptions,
  OP_FUNCTIONS,
  type Optimizer,
  oneHot,
  optimize,
  type PassReport,
  type PoolOptions,
  Prng,
  pad,
  printGraph,
  prod,
  type RandomOptions,
  type ReduceOptions,
  reshape,
  ringAllReduce,
  ScriptError,
  SGD,
  type SgdOptions,
  type Shape,
  SymbolicTensor,
  serializeGraph,
  shardBatch,
  slice,
  softmax,
  softmaxCrossEntropy,
  sparseSoftmaxCrossEntropy,
  sum,
  type TensorHandle,
  type TensorLike,
  type TensorType,
  type TensorValue,
  transpose,
  verifyGraph,
  type WhileOptions,
  whileLoop,
} from '@kiln/ir';
// Running: eager tensors, Session, trace / compile / script, gradients of functions, limits.
// Clusters: worker threads, remote workers, a coordinator's clients, plans and their stories.
export {
  type Cluster,
  ClusterClient,
  type ClusterRunOptions,
  ClusterSession,
  type Compiled,
  type CompileFunctionOptions,
  type ConnectOptions,
  compile,
  connect,
  DEFAULT_LIMITS,
  DeviceRegistry,
  devices,
  EagerContext,
  type ExecutionPlan,
  type Fallback,
  type Feeds,
  type Fetches,
  type FetchResult,
  formatPlan,
  formatSchedule,
  formatStory,
  type GradOptions,
  grad,
  keep,
  type MemoryReport,
  memory,
  ones,
  PROTOCOL_VERSION,
  RemoteCluster,
  type RemoteClusterOptions,
  type ResourceLimits,
  RUN_LINK_PATH,
  type RunOptions,
  randomNormal,
  randomUniform,
  type ScriptedFunction,
  type StoryEntry,
  script,
  setDefaultDevice,
  setDefaultWorkerDevice,
  Tensor,
  ThreadPool,
  type ThreadPoolOptions,
  type Traced,
  type TraceEntry,
  type TraceOptions,
  tensor,
  tidy,
  trace,
  traceWith,
  useDevice,
  type VariableSession,
  valueAndGrad,
  zeros,
} from '@kiln/scheduler';
export { loadCheckpointFile, saveCheckpointFile } from './checkpoint-file.js';
// The elementwise ops, one function each, named in a file generated from their definitions.
export * from './elementwise-ops.js';
export { loadGraphFile, saveGraphFile } from './graph-file.js';

// Eager tensors created without a graph live on the CPU unless setDefaultDevice says otherwise,
// and so do a thread pool's workers.
// The CPU is a registered kind too: Session.open(g, { device: 'cpu' }), useDevice('cpu').
devices.register(cpuPlugin);
setDefaultDevice(new CpuDevice({ name: 'cpu:0' }));
setDefaultWorkerDevice({ module: '@kiln/backend-cpu' });

/** A Session that runs on a fresh CPU device unless given another. */
export class Session extends SchedulerSession {
  constructor(graph: Graph | GraphData, options: Partial<SessionOptions> = {}) {
    super(graph, { ...options, device: options.device ?? new CpuDevice() });
  }
}
