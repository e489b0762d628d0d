import {
  atLocation,
  type BufferView,
  byteSizeOf,
  type ConcreteType,
  checkDevice,
  type Device,
  type DeviceBuffer,
  type Executable,
  expandComposites,
  formatType,
  KilnError,
  type OpContext,
  type OpName,
  opDef,
  opSubgraph,
  parseAttrs,
  type Subgraph,
  setDefaultContext,
  type TensorHandle,
  type TensorValue,
  userLocation,
} from '@kiln/ir';
import { LimitedDevice } from '../limits/limited-device.js';
import { type Limits, type ResourceLimits, resolveLimits } from '../limits/limits.js';
import { devices } from '../registry.js';
import { Tensor } from './tensor.js';

/** Live tensors and bytes per device: the first thing to look at when memory grows. */
export interface MemoryReport {
  readonly tensors: number;
  readonly bytes: number;
  readonly devices: Readonly<Record<string, { readonly tensors: number; readonly bytes: number }>>;
}

/** A composite a device declined, so its decomposition ran instead (see EagerContext.fallbacks). */
export interface Fallback {
  readonly op: OpName;
  /** The device's reason, from `supports`. */
  readonly reason: string;
  /** How many compiles expanded it. */
  readonly count: number;
}

// Weakly held: a Session's context must not outlive the Session because memory() can report it.
const contexts = new Set<WeakRef<EagerContext>>();

/** Compiled single-op executables kept per context; enough for any realistic op mix. */
const CACHE_LIMIT = 4096;

/**
 * Eager execution on one device. Every op goes through the same ABI path as a compiled graph:
 * a one-op subgraph, compiled once per (op, attributes, input types) and cached. On devices that
 * run synchronously it runs at once; on others the work is queued in order and reads wait for it.
 */
export class EagerContext implements OpContext<Tensor> {
  readonly level = 0;
  /** The device, with its memory counted against the limits (see LimitedDevice). */
  readonly device: LimitedDevice;
  readonly limits: Limits;
  readonly canReadSync: boolean;
  private readonly sync: boolean;
  private readonly executables = new Map<string, Executable>();
  /** Each op call's signature (op, attributes as given, input types): its checked attributes and result types. */
  private readonly signatures = new Map<string, Signature>();
  /**
   * Per op, the signature of its last call without attributes, and the type objects of the inputs
   * it was on: a loop calls an op again and again on tensors of the same types, which are the same
   * objects (an op's results share its signature's), so a hit needs no key built or hashed.
   */
  private readonly recent = new Map<OpName, Recent>();
  private readonly fallbackCounts = new Map<OpName, { op: OpName; reason: string; count: number }>();
  private pending: Promise<void> = Promise.resolve();
  private failure: unknown = null;
  private failureReported = false;
  private tensors = 0;
  private bytes = 0;
  /** Compiles so far: tests and benchmarks use it to see the cache work. */
  compiles = 0;

  constructor(device: Device, limits: ResourceLimits = {}) {
    checkDevice(device);
    this.limits = resolveLimits(limits);
    this.device = new LimitedDevice(device, this.limits);
    this.canReadSync = typeof device.readSync === 'function';
    this.sync =
      this.canReadSync && typeof device.compileSync === 'function' && typeof device.writeSync === 'function';
    contexts.add(new WeakRef(this));
    if (contexts.size % 256 === 0) for (const ref of contexts) if (!ref.deref()) contexts.delete(ref);
  }

  apply(op: OpName, inputs: readonly Tensor[], attrs: Readonly<Record<string, unknown>>): Tensor[] {
    const inViews: BufferView[] = [];
    const inTypes: ConcreteType[] = [];
    for (const t of inputs) {
      if (!(t instanceof Tensor) || t.context !== this) {
        const other = t instanceof Tensor ? `is on ${t.device}` : 'is not an eager tensor';
        throw new KilnError(
          'invalid-argument',
          `${op}: input ${inViews.length} ${other}, but this op runs on ${this.device.name}; ` +
            `move it first: await t.to(context) or t.toSync(context)${atLocation()}`,
        );
      }
      inViews.push(t.view(op));
      inTypes.push(t.type);
    }
    const known = this.signature(op, attrs, inTypes);
    const { parsed, outTypes, outBytes, key } = known;
    const outputs: Tensor[] = [];
    const outViews: BufferView[] = [];
    for (let i = 0; i < outTypes.length; i++) {
      const type = outTypes[i]!;
      const t = new Tensor(this, type, this.allocate(type, op, outBytes[i]!), outBytes[i]!);
      outputs.push(t);
      outViews.push(t.view(op));
    }
    for (const t of inputs) if (t.capturedBy !== 0) noteSuccessors(t, outTypes);
    const exe = this.sync
      ? (known.exe ??= this.executableSync(key, op, inTypes, parsed, outTypes))
      : undefined;
    if (exe?.runSync && this.failure === null) {
      exe.runSync(inViews, outViews);
    } else {
      this.enqueue(op, async () => {
        const e = exe ?? (await this.executable(key, op, inTypes, parsed, outTypes));
        await e.run(inViews, outViews);
      });
    }
    return outputs;
  }

  /**
   * The same op on the same types with the same attributes: checked and inferred once. Repeating
   * them is most of what an eager op costs on a CPU, where the kernel itself takes nanoseconds.
   */
  private signature(
    op: OpName,
    attrs: Readonly<Record<string, unknown>>,
    inTypes: readonly ConcreteType[],
  ): Signature {
    const bare = !hasKeys(attrs) && inTypes.length <= 2;
    if (bare) {
      const r = this.recent.get(op);
      if (r && r.arity === inTypes.length && r.a === inTypes[0] && r.b === inTypes[1]) return r.known;
    }
    const signature = signatureOf(op, attrs, inTypes);
    let known = this.signatures.get(signature);
    if (!known) {
      let parsed: Record<string, unknown>;
      let outTypes: ConcreteType[];
      try {
        parsed = parseAttrs(op, attrs, op);
        outTypes = opDef(op).infer(inTypes, parsed) as ConcreteType[];
      } catch (e) {
        if (e instanceof KilnError) throw new KilnError(e.code, `${e.message}${atLocation()}`, { cause: e });
        throw e;
      }
      const key = `${op}|${JSON.stringify(parsed)}|${inTypes.map((t) => `${t.dtype}${t.shape.join('x')}`).join(',')}`;
      known = { parsed, outTypes, outBytes: outTypes.map(byteSizeOf), key, exe: undefined };
      if (this.signatures.size >= CACHE_LIMIT) this.signatures.clear();
      this.signatures.set(signature, known);
    }
    if (bare) this.recent.set(op, { arity: inTypes.length, a: inTypes[0], b: inTypes[1], known });
    return known;
  }

  /**
   * Runs an executable compiled for this device (a whole traced graph) on eager tensors, giving
   * new tensors of `outputs` types: the same sync-or-queued path single ops take.
   */
  execute(
    exe: Executable | Promise<Executable>,
    inputs: readonly Tensor[],
    outputs: readonly ConcreteType[],
    usedBy: string,
  ): Tensor[] {
    const inViews = inputs.map((t) => t.view(usedBy));
    const results = outputs.map((t) => new Tensor(this, t, this.allocate(t, usedBy)));
    const outViews = results.map((t) => t.view(usedBy));
    if (!(exe instanceof Promise) && exe.runSync && this.failure === null) exe.runSync(inViews, outViews);
    else this.enqueue(usedBy, async () => (await exe).run(inViews, outViews));
    return results;
  }

  /** Whether this device compiles and runs synchronously. */
  get synchronous(): boolean {
    return this.sync;
  }

  constant(value: TensorValue): Tensor {
    const t = new Tensor(this, { dtype: value.dtype, shape: value.shape }, this.allocate(value, 'constant'));
    const view = t.view('constant');
    const bytes = new Uint8Array(value.data.buffer, value.data.byteOffset, value.data.byteLength);
    // A synchronous write copies now; a queued one must copy first, or it would read the caller's
    // array as it is when the write runs.
    if (this.sync) this.device.writeSync!(view.buffer, 0, bytes);
    else {
      const copy = bytes.slice();
      this.enqueue('constant', () => this.device.write(view.buffer, 0, copy));
    }
    return t;
  }

  /** Device memory for a result of `what`, within the limits; a refusal names `what` and the line. */
  private allocate(type: ConcreteType, what: string, byteLength = byteSizeOf(type)): DeviceBuffer {
    try {
      return this.device.allocateFor(byteLength, () => `${what}: a result of ${formatType(type)}`);
    } catch (e) {
      if (e instanceof KilnError && e.code === 'limit')
        throw new KilnError(e.code, `${e.message}${atLocation()}`, { cause: e });
      throw e;
    }
  }

  /** Eager tensors are the bottom level: nothing is lifted into them. */
  lift(handle: TensorHandle): Tensor {
    throw new KilnError(
      'invalid-argument',
      `cannot use ${String(handle)} in an eager op on ${this.device.name}`,
    );
  }

  /** The bytes of `view` once the work queued before is done; failures name `what` is read. */
  async read(view: BufferView, what: string): Promise<Uint8Array> {
    try {
      await this.settled();
      return await this.device.read(view.buffer, view.byteOffset, byteSizeOf(view));
    } catch (e) {
      throw about(what, e);
    }
  }

  readSync(view: BufferView, what: string): Uint8Array {
    if (!this.device.readSync) {
      throw new KilnError(
        'invalid-argument',
        `${what}: device ${this.device.name} cannot be read synchronously; use await t.data()`,
      );
    }
    this.rethrowFailure();
    return this.device.readSync(view.buffer, view.byteOffset, byteSizeOf(view));
  }

  /** Frees a buffer once the queued work that may still use it has run (even if that work failed). */
  release(buffer: DeviceBuffer): void {
    if (this.sync) this.device.free(buffer);
    else
      this.pending = this.pending.then(() => {
        try {
          this.device.free(buffer);
        } catch (e) {
          // Never a rejected queue: nobody may be waiting on it. The next read reports it.
          this.failure ??= about('freeing a tensor', e);
        }
      });
  }

  account(t: Tensor, sign: 1 | -1): void {
    this.tensors += sign;
    this.bytes += sign * t.byteLength;
  }

  /**
   * Waits for queued work; rethrows the first failure of an op, naming it. Work queued after a
   * failure is skipped (its inputs are suspect), and every read until then reports the failure;
   * work queued after it was reported runs again, as a Session's next run does.
   */
  async settled(): Promise<void> {
    await this.pending;
    this.rethrowFailure();
  }

  private rethrowFailure(): void {
    if (this.failure === null) return;
    this.failureReported = true;
    throw this.failure;
  }

  get live(): { tensors: number; bytes: number } {
    return { tensors: this.tensors, bytes: this.bytes };
  }

  /**
   * Queues `work` (the op `what`, asked for now). Its failure is kept, never left as a rejected
   * promise, and names the op and the user's line, which are long gone when a read reports it.
   */
  private enqueue(what: string, work: () => Promise<void>): void {
    if (this.failureReported) {
      this.failure = null;
      this.failureReported = false;
    }
    const site = new Error();
    this.pending = this.pending.then(async () => {
      if (this.failure !== null) return;
      try {
        await work();
      } catch (e) {
        this.failure = about(`${what}${atLocation(userLocation(site))}`, e);
      }
    });
  }

  /**
   * Compiles `subgraph` for this device, synchronously where the device can: with every node the
   * device declines replaced by its decomposition, so a device that runs only the primitives runs
   * every program. Each composite it declined is counted in `fallbacks`.
   */
  compileForDevice(subgraph: Subgraph): Executable | Promise<Executable> {
    const { subgraph: runnable, expansions } = expandComposites(subgraph, this.device);
    for (const e of expansions) {
      const seen = this.fallbackCounts.get(e.op);
      if (seen) seen.count++;
      else this.fallbackCounts.set(e.op, { op: e.op, reason: e.reason, count: 1 });
    }
    return this.sync ? this.device.compileSync!(runnable) : this.device.compile(runnable);
  }

  /**
   * The composites this device declined and ran as their decompositions, with its reason and how
   * many compiles expanded each: where a device lacks a fast path a program relies on.
   */
  get fallbacks(): readonly Fallback[] {
    return [...this.fallbackCounts.values()].map((f) => ({ ...f }));
  }

  private remember(key: string, exe: Executable): Executable {
    if (this.executables.size >= CACHE_LIMIT) {
      const oldest = this.executables.keys().next().value as string;
      this.executables.get(oldest)?.dispose();
      this.executables.delete(oldest);
      // Signatures hold their executables: none may keep the one just disposed.
      this.signatures.clear();
      this.recent.clear();
    }
    this.executables.set(key, exe);
    this.compiles++;
    return exe;
  }

  private executableSync(
    key: string,
    op: OpName,
    ins: ConcreteType[],
    attrs: Record<string, unknown>,
    outs: ConcreteType[],
  ): Executable {
    return (
      this.executables.get(key) ??
      this.remember(key, this.compileForDevice(opSubgraph(op, ins, attrs, outs)) as Executable)
    );
  }

  private async executable(
    key: string,
    op: OpName,
    ins: ConcreteType[],
    attrs: Record<string, unknown>,
    outs: ConcreteType[],
  ): Promise<Executable> {
    return (
      this.executables.get(key) ??
      this.remember(key, await this.compileForDevice(opSubgraph(op, ins, attrs, outs)))
    );
  }
}

/** An op call's signature, worked out once: its checked attributes, result types and executable. */
interface Signature {
  readonly parsed: Record<string, unknown>;
  readonly outTypes: ConcreteType[];
  /** Their sizes in bytes. */
  readonly outBytes: readonly number[];
  /** The executable cache's key (attributes as checked, input types). */
  readonly key: string;
  /** The executable, once a synchronous device compiled it. */
  exe: Executable | undefined;
}

/** An op's last call without attributes (see EagerContext.recent). */
interface Recent {
  readonly arity: number;
  readonly a: ConcreteType | undefined;
  readonly b: ConcreteType | undefined;
  readonly known: Signature;
}

function hasKeys(attrs: Readonly<Record<string, unknown>>): boolean {
  for (const _ in attrs) return true;
  return false;
}

/** Counts the results that could replace a captured tensor: same dtype, same shape. */
function noteSuccessors(t: Tensor, results: readonly ConcreteType[]): void {
  for (const r of results) {
    if (
      r.dtype === t.dtype &&
      r.shape.length === t.shape.length &&
      r.shape.every((d, i) => d === t.shape[i])
    ) {
      t.successors++;
      return;
    }
  }
}

/** `error` with `what` in front of its message, keeping its code (a KilnError for anything else). */
function about(what: string, error: unknown): KilnError {
  if (error instanceof KilnError)
    return new KilnError(error.code, `${what}: ${error.message}`, { cause: error });
  const message = error instanceof Error ? error.message : String(error);
  return new KilnError('runtime', `${what}: ${message}`, { cause: error });
}

let defaultEager: EagerContext | null = null;

/**
 * Makes `device` the home of eager tensors created without a graph (`tensor([...])`), with
 * `limits` on the memory they and compiled functions take (defaults: DEFAULT_LIMITS).
 */
export function setDefaultDevice(device: Device, limits: ResourceLimits = {}): EagerContext {
  defaultEager = new EagerContext(device, limits);
  setDefaultContext(defaultEager);
  return defaultEager;
}

/**
 * `setDefaultDevice` by plugin kind: creates a device of `kind` from the shared registry
 * (`devices`), with `options` for its plugin, and makes it the home of new eager tensors.
 */
export async function useDevice(
  kind: string,
  options?: unknown,
  limits: ResourceLimits = {},
): Promise<EagerContext> {
  return setDefaultDevice(await devices.create(kind, options), limits);
}

export function defaultEagerContext(): EagerContext {
  if (!defaultEager) {
    throw new KilnError(
      'invalid-argument',
      "no default device: import 'kiln-tensor' (it sets the CPU device) or call setDefaultDevice(device)",
    );
  }
  return defaultEager;
}

/** Live tensors and bytes, in total and per device. */
export function memory(): MemoryReport {
  const devices: Record<string, { tensors: number; bytes: number }> = {};
  let tensors = 0;
  let bytes = 0;
  for (const ref of contexts) {
    const c = ref.deref();
    if (!c) {
      contexts.delete(ref);
      continue;
    }
    const d = (devices[c.device.name] ??= { tensors: 0, bytes: 0 });
    d.tensors += c.live.tensors;
    d.bytes += c.live.bytes;
    tensors += c.live.tensors;
    bytes += c.live.bytes;
  }
  return { tensors, bytes, devices };
}

/**
 * The key of an op on these input types with these attributes, written out by hand: a JSON
 * string of empty attributes and a join per shape cost a tenth of a 1-element eager op.
 */
function signatureOf(
  op: string,
  attrs: Readonly<Record<string, unknown>>,
  types: readonly ConcreteType[],
): string {
  let key = `${op}|`;
  for (const _ in attrs) {
    key += JSON.stringify(attrs);
    break;
  }
  for (const t of types) {
    key += `|${t.dtype}`;
    for (const d of t.shape) key += `x${d}`;
  }
  return key;
}
