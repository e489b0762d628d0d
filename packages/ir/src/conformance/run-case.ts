import type { BufferView, Device } from '../abi/device.js';
import { DTYPE_INFO, type HostArray } from '../dtype.js';
import { KilnError } from '../errors.js';
import { Graph } from '../graph/builder.js';
import { extractSubgraph, type Subgraph } from '../graph/subgraph.js';
import type { ConcreteType } from '../ops/op-def.js';
import type { RefTensor } from '../ref-tensor.js';
import { byteSizeOf } from '../shape.js';

/** Bytes left around each bound tensor; a kernel that writes out of bounds trips them. */
const GUARD = 64;
const GUARD_BYTE = 0xa5;

export function toHost(t: RefTensor): HostArray {
  const out = DTYPE_INFO[t.dtype].create(t.data.length);
  out.set(t.data);
  return out;
}

export function fromBytes(type: ConcreteType, bytes: Uint8Array): HostArray {
  const copy = bytes.slice();
  const n = copy.byteLength / DTYPE_INFO[type.dtype].bytes;
  return type.dtype === 'float32'
    ? new Float32Array(copy.buffer, 0, n)
    : type.dtype === 'int32'
      ? new Int32Array(copy.buffer, 0, n)
      : copy;
}

/** A one-node subgraph applying `op` to inputs of the given types. */
export function singleOpSubgraph(
  op: import('../ops/index.js').OpName,
  inputs: readonly ConcreteType[],
  attrs: Readonly<Record<string, unknown>>,
): Subgraph {
  const g = new Graph();
  const ins = inputs.map((t, i) => g.placeholder(t.dtype, t.shape, `in${i}`));
  const outs = g.apply(op, ins, attrs);
  const bind = new Map(ins.map((t, i) => [t.id, inputs[i]!] as const));
  return extractSubgraph(g, { nodes: [outs[0]!.node.id], bind, results: outs.map((o) => o.id) }).subgraph;
}

/**
 * Compiles and runs a subgraph on a device with every tensor at an offset inside one shared
 * buffer, fenced by guard bytes, and returns the results as host arrays.
 */
export async function runOnDevice(
  device: Device,
  subgraph: Subgraph,
  inputs: readonly HostArray[],
): Promise<HostArray[]> {
  const types = [...subgraph.inputs, ...subgraph.results].map(
    (v) => subgraph.values[v]!.type as ConcreteType,
  );
  const offsets: number[] = [];
  let total = GUARD;
  for (const t of types) {
    offsets.push(total);
    total += byteSizeOf(t) + GUARD;
    total = Math.ceil(total / 16) * 16;
  }
  const exe = await device.compile(subgraph);
  const buffer = device.allocate(total);
  try {
    await device.write(buffer, 0, new Uint8Array(total).fill(GUARD_BYTE));
    const views: BufferView[] = types.map((t, i) => ({
      buffer,
      byteOffset: offsets[i]!,
      dtype: t.dtype,
      shape: t.shape,
    }));
    for (const [i, data] of inputs.entries()) {
      await device.write(buffer, offsets[i]!, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    }
    const nIn = subgraph.inputs.length;
    await exe.run(views.slice(0, nIn), views.slice(nIn));
    const all = await device.read(buffer, 0, total);
    // Everything outside the result views must be untouched (inputs are read-only to kernels).
    const mask = new Uint8Array(total);
    types.forEach((t, i) => {
      if (i >= nIn) mask.fill(1, offsets[i]!, offsets[i]! + byteSizeOf(t));
    });
    let inputIndex = 0;
    for (let b = 0; b < total; b++) {
      if (mask[b]) continue;
      const inInput = types.findIndex(
        (t, i) => i < nIn && b >= offsets[i]! && b < offsets[i]! + byteSizeOf(t),
      );
      if (inInput >= 0) {
        inputIndex = inInput;
        const data = inputs[inInput]!;
        const rel = b - offsets[inInput]!;
        const original = new Uint8Array(data.buffer, data.byteOffset, data.byteLength)[rel];
        if (all[b] !== original)
          throw new KilnError('runtime', `the kernel overwrote input ${inputIndex} at byte ${rel}`);
      } else if (all[b] !== GUARD_BYTE) {
        throw new KilnError('runtime', `the kernel wrote outside its result views (byte ${b} of the arena)`);
      }
    }
    return types
      .slice(nIn)
      .map((t, i) => fromBytes(t, all.subarray(offsets[nIn + i]!, offsets[nIn + i]! + byteSizeOf(t))));
  } finally {
    device.free(buffer);
    exe.dispose();
  }
}
