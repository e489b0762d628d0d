import type { DType } from '../dtype.js';
import type { NodeId, ValueId } from '../graph/graph.js';
import type { Subgraph } from '../graph/subgraph.js';
import type { OpName } from '../ops/index.js';
import type { ConcreteType, Cost } from '../ops/op-def.js';
import type { ConcreteShape } from '../shape.js';

/**
 * The kernel ABI, version 2: everything a device plugin implements, and everything the scheduler
 * may assume about one. Small on purpose (allocator, capability, compiler, program), so a plugin
 * author can read it in ten minutes and a GPU or a remote device fits without changes.
 *
 * Lifecycle: the scheduler asks `supports` for each node it wants to place, hands the device a
 * `Subgraph` to `compile` (one op for eager use, a fusion group, or a whole partition), allocates
 * buffers, `write`s inputs, `run`s the executable with bound views, and `read`s results.
 *
 * What a device must run (the promise that changed in version 2): every primitive op
 * (PRIMITIVE_OP_NAMES). A composite op (softmax, the losses, `fused`, ...) is a fast path: a device
 * that declines one through `supports` never receives it; the scheduler compiles the op's
 * decomposition instead, in eager mode, Session, compiled functions, plans and workers alike.
 */
export const KERNEL_ABI_VERSION = 2;

/** A device allocation. Opaque: only the device that made it may look inside. */
export interface DeviceBuffer {
  readonly device: string;
  readonly byteLength: number;
}

/** A typed window onto a buffer, as the memory planner lays tensors out in an arena. */
export interface BufferView {
  readonly buffer: DeviceBuffer;
  /** In bytes; a multiple of the dtype's size. */
  readonly byteOffset: number;
  readonly dtype: DType;
  readonly shape: ConcreteShape;
}

/** A node as the capability query sees it: concrete types, validated attributes. */
export interface NodeQuery {
  readonly op: OpName;
  readonly attrs: Readonly<Record<string, unknown>>;
  readonly inputs: readonly ConcreteType[];
  readonly outputs: readonly ConcreteType[];
}

export type Support =
  | {
      readonly ok: true;
      /** Estimated seconds on this device; the placer weighs it against transfer costs. */
      readonly seconds: number;
    }
  | { readonly ok: false; readonly reason: string };

/** A compiled subgraph. */
export interface Executable {
  /**
   * Runs with `inputs` bound to the subgraph's inputs and `outputs` to its results, in order.
   * Resolves when the results are in their buffers (for a GPU: when the work is queued such that
   * a later `read` observes it). Rejects with a KilnError naming the node that failed.
   */
  run(inputs: readonly BufferView[], outputs: readonly BufferView[], observe?: RunObserver): Promise<void>;
  /** The same, synchronously, on devices that can (a CPU); absent elsewhere. */
  runSync?(inputs: readonly BufferView[], outputs: readonly BufferView[], observe?: RunObserver): void;
  dispose(): void;
}

/**
 * Told the id of each node as it starts, where the device runs nodes one by one on the calling
 * thread (host devices); others may ignore it. A worker's watchdog learns from it which node a
 * run that stopped making progress is stuck in. It must be cheap: it runs once per node.
 */
export type RunObserver = (node: number) => void;

/**
 * Where a subgraph's intermediates live, as a memory planner laid them out: plain data, so the
 * scheduler can hand its plan through the ABI without a device importing the scheduler.
 *
 * An intermediate is a value computed inside the subgraph that is neither one of its inputs nor one
 * of its results (results go straight into the bound output views). Each has a byte `offset` into
 * one arena of `arenaBytes`, aligned to its dtype's size; values alive at the same step must not
 * share bytes, except an elementwise op's output written over an input of the same shape and
 * element width that dies at that op. `order` is the execution order the offsets are valid for:
 * a topological order of the subgraph's nodes (its input placeholders may be listed or left out).
 */
export interface MemoryLayout {
  readonly order: readonly NodeId[];
  readonly arenaBytes: number;
  readonly offsets: ReadonlyMap<ValueId, number>;
}

/**
 * Hints for `compile`. A device may ignore any of them (a device that allocates per value, or one
 * whose allocator plans for itself, is still correct); one that honours them must reject a layout it
 * cannot run with a KilnError('invalid-argument') rather than compute wrong results.
 */
export interface CompileOptions {
  /** Run every intermediate at its planned offset inside one arena, in the planned order. */
  readonly memory?: MemoryLayout;
}

/** Throughput figures for the default cost model: seconds = flops / flops/s + bytes / bytes/s. */
export interface DeviceInfo {
  readonly flopsPerSecond: number;
  readonly bytesPerSecond: number;
}

export interface Device {
  readonly abi: typeof KERNEL_ABI_VERSION;
  /** Unique among registered devices, such as 'cpu:0'. */
  readonly name: string;
  /** The plugin kind, such as 'cpu' or 'webgpu'. */
  readonly kind: string;
  readonly info: DeviceInfo;

  // Memory: asynchronous first; a CPU completes at once.
  allocate(byteLength: number): DeviceBuffer;
  free(buffer: DeviceBuffer): void;
  write(buffer: DeviceBuffer, byteOffset: number, data: ArrayBufferView): Promise<void>;
  /** Synchronous write where the device allows it (a CPU); absent elsewhere. */
  writeSync?(buffer: DeviceBuffer, byteOffset: number, data: ArrayBufferView): void;
  /**
   * The bytes, as a copy the caller owns: it may keep them, send them, or hand them to a socket
   * after the buffer is freed or rewritten.
   */
  read(buffer: DeviceBuffer, byteOffset: number, byteLength: number): Promise<Uint8Array>;
  /** Synchronous read where the device allows it (a CPU); absent elsewhere. */
  readSync?(buffer: DeviceBuffer, byteOffset: number, byteLength: number): Uint8Array;
  /**
   * The bytes where they lie, on a device whose memory is the host's (a CPU); absent elsewhere. A
   * view, not a copy: valid until the buffer is next written, run into or freed. It lets a caller
   * that copies anyway (into shared memory, onto a socket) skip the read's own copy.
   */
  view?(buffer: DeviceBuffer, byteOffset: number, byteLength: number): Uint8Array;

  /**
   * Capability: may this device run this node, and at what cost? Declining a composite is always
   * fine (its expansion runs instead); declining a primitive makes the node unplaceable here.
   */
  supports(node: NodeQuery): Support;

  // Compilation: a concretely typed subgraph to an executable.
  compile(subgraph: Subgraph, options?: CompileOptions): Promise<Executable>;
  /**
   * Synchronous compilation where the device allows it. With runSync, writeSync and readSync it
   * lets eager tensors compute and print at once, as PyTorch's CPU tensors do; devices without
   * them get the same API through promises and a queue.
   */
  compileSync?(subgraph: Subgraph, options?: CompileOptions): Executable;

  /**
   * Ends the device. Work still in flight rejects with KilnError('cancelled') naming it, and is
   * never reported as an unhandled rejection, awaited or not; later calls fail the same way
   * (`deviceDisposed`), except `free`, which may still come from tensors released afterwards.
   */
  dispose(): void | Promise<void>;
}

/** What a plugin package exports: a factory checked at registration. */
export interface DevicePlugin<Options = unknown> {
  readonly abi: number;
  readonly kind: string;
  create(options?: Options): Device | Promise<Device>;
}

/** The default cost model, for devices without a better one. */
export function estimateSeconds(cost: Cost, info: DeviceInfo): number {
  return cost.flops / info.flopsPerSecond + cost.bytes / info.bytesPerSecond;
}
