import {
  atLocation,
  type BufferView,
  byteSizeOf,
  type ConcreteShape,
  type ConcreteType,
  type DeviceBuffer,
  type DType,
  formatType,
  type HostArray,
  type HostTensor,
  handledIfCancelled,
  KilnError,
  type NestedArray,
  TensorMethods,
} from '@kiln/ir';
import { hostTensorFromBytes } from '../host-bytes.js';
import type { EagerContext } from './context.js';
import { track } from './scope.js';

let nextId = 1;

/**
 * An eager tensor: it lives on a device, and each op on it runs when called (PyTorch style). On a
 * device with synchronous execution (the CPU) values can be read at once with `dataSync()`,
 * `item()` or by printing; elsewhere `await t.data()` waits for queued work.
 *
 * Memory is explicit, as on every real device: free with `dispose()`, a `using` declaration, or a
 * `tidy(() => ...)` scope that disposes everything it created except what it returns.
 */
export class Tensor extends TensorMethods implements Disposable {
  readonly id = nextId++;
  /**
   * Its buffer as ops bind it, made once (an op reads its inputs' views on every call); null once
   * disposed.
   */
  private bound: BufferView | null;
  /** How many live compiled functions read this tensor from their closure (see compile). */
  capturedBy = 0;
  /**
   * Eager results of this tensor's own type computed from it while it was captured: each may be
   * its replacement in the closure (`w = w.sub(step)`), which the compiled function must notice.
   */
  successors = 0;
  /** Its size in bytes, as the context's memory report counts it (worked out once, not per count). */
  readonly byteLength: number;

  constructor(
    readonly context: EagerContext,
    /** Its dtype and shape; tensors an op makes share their op's (see EagerContext.apply). */
    readonly type: ConcreteType,
    buffer: DeviceBuffer,
    byteLength = byteSizeOf(type),
  ) {
    super();
    this.bound = { buffer, byteOffset: 0, dtype: type.dtype, shape: type.shape };
    this.byteLength = byteLength;
    context.account(this, +1);
    track(this);
  }

  get dtype(): DType {
    return this.type.dtype;
  }
  get shape(): ConcreteShape {
    return this.type.shape;
  }
  get size(): number {
    return this.type.shape.reduce((a, b) => a * b, 1);
  }
  get device(): string {
    return this.context.device.name;
  }
  get isDisposed(): boolean {
    return this.bound === null;
  }

  /** The buffer, or a clear error if this tensor was disposed. */
  view(usedBy: string): BufferView {
    if (this.bound === null) {
      throw new KilnError(
        'invalid-argument',
        `${usedBy}: ${this.describe()} was disposed and cannot be used${atLocation()}`,
      );
    }
    return this.bound;
  }

  dispose(): void {
    if (this.bound === null) return;
    this.context.release(this.bound.buffer);
    this.bound = null;
    this.context.account(this, -1);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  /**
   * The values, once every queued op that produces them has run. If the device is disposed first
   * this rejects with KilnError('cancelled'), which is never reported as unhandled.
   */
  data(): Promise<HostArray> {
    return handledIfCancelled(this.toHost().then((h) => h.data));
  }

  /**
   * A copy of this tensor on the device of `target` (an EagerContext, such as another Session's or
   * the one `setDefaultDevice` returned), once the work queued before it is done. Ops take their
   * inputs from one device: move a tensor first to combine it with tensors of another.
   */
  async to(target: EagerContext): Promise<Tensor> {
    const host = await this.toHost();
    return target.constant({ dtype: host.dtype, shape: host.shape, data: host.data });
  }

  /** `to`, at once, where this tensor's device reads synchronously (a CPU). */
  toSync(target: EagerContext): Tensor {
    const host = this.toHostSync();
    return target.constant({ dtype: host.dtype, shape: host.shape, data: host.data });
  }

  toHost(): Promise<HostTensor> {
    return handledIfCancelled(this.read());
  }

  private async read(): Promise<HostTensor> {
    const view = this.view('data');
    return hostTensorFromBytes(this.type, await this.context.read(view, `reading ${this.describe()}`));
  }

  /** The values now; only on devices that read synchronously (the CPU). */
  dataSync(): HostArray {
    return this.toHostSync().data;
  }

  toHostSync(): HostTensor {
    const view = this.view('dataSync');
    return hostTensorFromBytes(this.type, this.context.readSync(view, this.describe()));
  }

  /** Nested arrays of the values. */
  array(): Promise<NestedArray> {
    return handledIfCancelled(this.toHost().then((h) => h.toArray()));
  }

  /** `array`, now; only on devices that read synchronously (the CPU). */
  arraySync(): NestedArray {
    return this.toHostSync().toArray();
  }

  /**
   * The single value of a one-element tensor, as a number (bools read as 1 or 0). Synchronous, as
   * PyTorch's `item()` is: the one read without the `Sync` suffix, since JavaScript's own
   * comparisons and `Number(t)` call it; on a device that cannot read synchronously, use
   * `(await t.data())[0]`.
   */
  item(): number {
    if (this.size !== 1) {
      throw new KilnError('invalid-argument', `item: ${this.describe()} has ${this.size} elements, not 1`);
    }
    return this.dataSync()[0]!;
  }

  /** `t > 0.5` and `Number(t)` read one-element tensors; a string hint prints. */
  [Symbol.toPrimitive](hint: string): number | string {
    if (hint === 'string') return this.toString();
    return Number(this.item());
  }

  describe(): string {
    return `tensor #${this.id} (${formatType(this.type)} on ${this.device})`;
  }

  /** Values abbreviated like numpy, with shape, dtype and device. */
  override toString(): string {
    if (this.bound === null)
      return `tensor(<disposed>, dtype=${this.dtype}, shape=[${this.shape.join(',')}], device=${this.device})`;
    if (!this.context.canReadSync)
      return `tensor(<on ${this.device}: await data() to read>, dtype=${this.dtype}, shape=[${this.shape.join(',')}])`;
    return this.toHostSync().toString().replace(/\)$/, `, device=${this.device})`);
  }
}
