import { byteSizeOf, type ConcreteType, type Device, extractSubgraph, requiredNodes } from '@kiln/ir';
import { DeviceRegistry, setDefaultDevice, type Tensor, trace } from '@kiln/scheduler';

/**
 * What the scheduler's benchmarks share. The scheduler reaches devices only through the ABI, so
 * the CPU device comes from registering its plugin by package name.
 */
export async function cpuDevice(options: { makeDefault?: boolean } = {}): Promise<Device> {
  const registry = new DeviceRegistry();
  await registry.registerPackage('@kiln/backend-cpu');
  const device = await registry.create('cpu', { name: 'cpu:0' });
  if (options.makeDefault) setDefaultDevice(device);
  return device;
}

/**
 * The baseline "kernels only": `fn` traced on `x` and compiled as it is (no passes), inputs and
 * outputs bound once, so a timed call runs the kernels and nothing else. Needs a synchronous device.
 */
export function kernelsOnly(device: Device, fn: (x: Tensor) => Tensor, x: Tensor): () => void {
  if (!device.compileSync) throw new Error(`${device.name} does not compile synchronously`);
  const traced = trace(fn, x);
  const bound = [...traced.inputs, ...traced.captureInputs];
  const bind = new Map(bound.map((t) => [t.id, t.type as ConcreteType]));
  const results = traced.outputs.map((t) => t.id);
  const nodes = requiredNodes(traced.graph, results).filter((id) => !bound.some((b) => b.node.id === id));
  const { subgraph } = extractSubgraph(traced.graph, { nodes, bind, results });
  const exe = device.compileSync(subgraph);
  const outs = subgraph.results.map((v) => {
    const t = subgraph.values[v]!.type as ConcreteType;
    return { buffer: device.allocate(byteSizeOf(t)), byteOffset: 0, dtype: t.dtype, shape: t.shape };
  });
  const ins = [x, ...traced.captures].map((t) => t.view('bench'));
  return () => exe.runSync!(ins, outs);
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
