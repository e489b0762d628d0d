/**
 * kiln: the public API, with the built-in CPU device as the default. This package holds no logic
 * of its own: it re-exports @kiln/ir and @kiln/scheduler and wires in @kiln/backend-cpu.
 */
import { CpuDevice } from '@kiln/backend-cpu';
import type { Graph, GraphData } from '@kiln/ir';
import {
  Session as SchedulerSession,
  type SessionOptions,
  setDefaultDevice,
  setDefaultWorkerDevice,
} from '@kiln/scheduler';

export { CpuDevice, cpuPlugin } from '@kiln/backend-cpu';
export * from '@kiln/ir';
export * from '@kiln/scheduler';
// Eager-typed creation functions take precedence over the graph-first ones of @kiln/ir.
export { ones, randomNormal, randomUniform, tensor, zeros } from '@kiln/scheduler';
export { loadCheckpointFile, saveCheckpointFile } from './checkpoint-file.js';
export { loadGraphFile, saveGraphFile } from './graph-file.js';

// Eager tensors created without a graph live on the CPU unless setDefaultDevice says otherwise,
// and so do a thread pool's workers.
setDefaultDevice(new CpuDevice({ name: 'cpu:0' }));
setDefaultWorkerDevice({ module: '@kiln/backend-cpu' });

/** A Session that runs on a fresh CPU device unless given another. */
export class Session extends SchedulerSession {
  constructor(graph: Graph | GraphData, options: Partial<SessionOptions> = {}) {
    super(graph, { ...options, device: options.device ?? new CpuDevice() });
  }
}
