import {
  type ConcreteType,
  type ConformanceCase,
  type Device,
  type DeviceBuffer,
  type DeviceInfo,
  DTYPE_INFO,
  DTYPES,
  type DType,
  EXECUTOR_OPS,
  type Executable,
  estimateSeconds,
  KERNEL_ABI_VERSION,
  KilnError,
  type NodeQuery,
  OP_NAMES,
  opDef,
  Prng,
  parseAttrs,
  type Support,
  type TensorValue,
} from '@kiln/ir';

/**
 * What a worker's device can run, as it reports it when it joins: so the coordinator places nodes
 * without creating a device of its own (it may not even have the plugin installed). Per op, the
 * dtypes its device accepted in its inputs and outputs, probed with the conformance kit's cases of
 * that op and with each case recast to every dtype the op's inference allows.
 */
export interface DeviceCapabilities {
  readonly name: string;
  readonly kind: string;
  readonly info: DeviceInfo;
  readonly ops: readonly (readonly [op: string, dtypes: readonly string[]])[];
}

/** A case with every dtype in it (inputs, a dtype attribute, a constant's value) made `dtype`. */
function recast(
  c: ConformanceCase<Record<string, unknown>>,
  dtype: DType,
): ConformanceCase<Record<string, unknown>> {
  const attrs: Record<string, unknown> = { ...c.attrs };
  if ('dtype' in attrs) attrs.dtype = dtype;
  const value = attrs.value as TensorValue | undefined;
  if (value && typeof value === 'object' && 'data' in value) {
    const data = DTYPE_INFO[dtype].create(value.data.length);
    attrs.value = { dtype, shape: value.shape, data };
  }
  return { inputs: c.inputs.map((t) => ({ ...t, dtype })), attrs };
}

/** Probes `device` with every op's conformance cases, in every dtype, and records what it accepts. */
export function describeCapabilities(device: Device): DeviceCapabilities {
  const ops: [string, string[]][] = [];
  for (const op of OP_NAMES) {
    if (EXECUTOR_OPS.has(op)) continue;
    const def = opDef(op);
    const accepted = new Set<string>();
    for (const base of def.cases(new Prng(1)) as ConformanceCase<Record<string, unknown>>[]) {
      for (const c of [base, ...DTYPES.map((d) => recast(base, d))]) {
        try {
          const attrs = parseAttrs(op, c.attrs, op);
          const inputs: ConcreteType[] = c.inputs.map((t) => ({ dtype: t.dtype, shape: t.shape }));
          const outputs = def.infer(inputs, attrs as never) as ConcreteType[];
          if (!device.supports({ op, attrs, inputs, outputs }).ok) continue;
          for (const t of [...inputs, ...outputs]) accepted.add(t.dtype);
        } catch {
          // A variant this op's own inference refuses says nothing about the device.
        }
      }
    }
    if (accepted.size > 0) ops.push([op, [...accepted].sort()]);
  }
  return { name: device.name, kind: device.kind, info: { ...device.info }, ops };
}

const notHere = (what: string) =>
  new KilnError('invalid-argument', `${what}: a planning device only answers what its worker can run`);

/**
 * A device for planning only: it answers `supports` from a worker's reported capabilities and
 * estimates cost with the default cost model and the worker's figures. It holds no memory and
 * runs nothing; the worker does.
 */
export class CapabilityDevice implements Device {
  readonly abi = KERNEL_ABI_VERSION;
  readonly name: string;
  readonly kind: string;
  readonly info: DeviceInfo;
  private readonly table: ReadonlyMap<string, ReadonlySet<string>>;

  constructor(readonly capabilities: DeviceCapabilities) {
    this.name = capabilities.name;
    this.kind = capabilities.kind;
    this.info = capabilities.info;
    this.table = new Map(capabilities.ops.map(([op, sigs]) => [op, new Set(sigs)]));
  }

  supports(node: NodeQuery): Support {
    if (EXECUTOR_OPS.has(node.op))
      return { ok: false, reason: `${node.op} is bound by the executor, not run by devices` };
    const dtypes = this.table.get(node.op);
    const missing = [...node.inputs, ...node.outputs].find((t) => !dtypes?.has(t.dtype));
    if (missing)
      return {
        ok: false,
        reason: `${this.name} (${this.kind}) reported no kernel for ${node.op}${dtypes ? ` on ${missing.dtype}` : ''}`,
      };
    return {
      ok: true,
      seconds: estimateSeconds(
        opDef(node.op).cost(node.inputs, node.outputs, node.attrs as never),
        this.info,
      ),
    };
  }

  allocate(_bytes: number): DeviceBuffer {
    throw notHere(`${this.name}: allocate`);
  }
  free(): void {
    throw notHere(`${this.name}: free`);
  }
  write(): Promise<void> {
    return Promise.reject(notHere(`${this.name}: write`));
  }
  read(): Promise<Uint8Array> {
    return Promise.reject(notHere(`${this.name}: read`));
  }
  compile(): Promise<Executable> {
    return Promise.reject(notHere(`${this.name}: compile`));
  }
  dispose(): void {}
}
