export { type GradOptions, grad, valueAndGrad } from './autodiff/value-and-grad.js';
export { CLIENT_PROTOCOL_VERSION } from './cluster/client-protocol.js';
export type { Cluster } from './cluster/cluster.js';
export { ClusterClient, type ConnectOptions, connect } from './cluster/cluster-client.js';
export {
  type ClusterRunOptions,
  ClusterSession,
  DEFAULT_CLUSTER_TIMEOUT_MILLIS,
} from './cluster/cluster-session.js';
export { decodeFromWorker, decodeToWorker, encodeFrame } from './cluster/codec.js';
export { type ClusterEvent, Coordinator, type PlacedPartition } from './cluster/coordinator.js';
export { type LoweredPlan, lowerPlan } from './cluster/lower.js';
export {
  type DeviceSpec,
  type FromWorker,
  PROTOCOL_VERSION,
  RUN_LINK_PATH,
  type ToWorker,
  type WireTensor,
} from './cluster/protocol.js';
export { RemoteCluster, type RemoteClusterOptions } from './cluster/remote-cluster.js';
export {
  type Instruction,
  type RunEvent,
  type RunFailure,
  RunScheduler,
  type ScheduledPartition,
} from './cluster/run-scheduler.js';
export { formatSchedule } from './cluster/schedule.js';
export { formatStory, type StoryEntry } from './cluster/story.js';
export { setDefaultWorkerDevice, ThreadPool, type ThreadPoolOptions } from './cluster/thread-pool.js';
export { type ExecuteOptions, type TraceEntry, WorkerPool } from './cluster/worker-pool.js';
export {
  startWorkerProcess,
  type WorkerProcess,
  type WorkerProcessOptions,
} from './cluster/worker-process.js';
export { type Compiled, type CompileFunctionOptions, type CompileStats, compile } from './compile/compile.js';
export {
  defaultEagerContext,
  EagerContext,
  type Fallback,
  type MemoryReport,
  memory,
  setDefaultDevice,
  useDevice,
} from './eager/context.js';
export { ones, randomNormal, randomUniform, tensor, zeros } from './eager/create.js';
export { keep, tidy } from './eager/scope.js';
export { Tensor } from './eager/tensor.js';
export type { Feeds, FeedValue } from './feeds.js';
export type { Fetch, Fetches, FetchResult } from './fetches.js';
export { LimitedDevice } from './limits/limited-device.js';
export { DEFAULT_LIMITS, type Limits, type ResourceLimits, resolveLimits } from './limits/limits.js';
export { type NetLog, stderrLog } from './net/log.js';
export {
  type BufferAssignment,
  type FitStrategy,
  formatMemoryPlan,
  type MemoryPlan,
  type MemoryPlanOptions,
  type OrderPeak,
  planMemory,
  verifyPlan,
} from './plan/memory.js';
export {
  type DevicePartition,
  formatPlacement,
  type Partitioned,
  partition,
  type Recv,
  type Send,
} from './plan/partition.js';
export { type Placement, type PlaceOptions, place } from './plan/place.js';
export {
  type ExecutionPlan,
  formatPlan,
  type PartitionInput,
  type PartitionOutput,
  type PartitionPlan,
  type PlanOptions,
  plan,
} from './plan/plan.js';
export { Program, type ProgramOptions } from './program/program.js';
export { planSteps, type Step } from './program/steps.js';
export { DeviceRegistry, devices } from './registry.js';
export { planRun, type RunPlan } from './run-plan.js';
export { type ScriptedFunction, script } from './script/script.js';
export { type RunOptions, Session, type SessionOptions } from './session.js';
export { GraphFunction } from './trace/graph-function.js';
export { type Traced, type TraceOptions, trace, traceWith } from './trace/trace.js';
export { GraphBreak, TraceGraph } from './trace/trace-graph.js';
export type { VariableSession } from './variable-session.js';
