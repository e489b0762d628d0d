import {
  type BufferView,
  type ConcreteType,
  type Device,
  type DeviceBuffer,
  type Executable,
  expandComposites,
  KilnError,
  type MemoryLayout,
} from '@kiln/ir';
import { LimitedDevice } from '../limits/limited-device.js';
import { DEFAULT_LIMITS, type Limits } from '../limits/limits.js';
import { DeviceRegistry } from '../registry.js';
import { describeCapabilities } from './capabilities.js';
import { type Delivery, PeerInbox } from './peer-inbox.js';
import type { ProgressBoard } from './progress-board.js';
import {
  type DeviceSpec,
  type FromWorker,
  type PeerMessage,
  PROTOCOL_VERSION,
  type ToWorker,
  type WireInput,
  type WireOutput,
  type WireTensor,
} from './protocol.js';
import { RecentMessages } from './recent-messages.js';
import { subgraphFromBytes } from './subgraph-bytes.js';
import { wireFromDevice, wireType } from './wire-tensor.js';

interface LoadedPartition {
  readonly executable: Executable;
  readonly inputs: readonly WireInput[];
  readonly inputTypes: readonly ConcreteType[];
  readonly outputs: readonly WireOutput[];
  readonly outputTypes: readonly ConcreteType[];
}

interface Variable {
  readonly buffer: DeviceBuffer;
  readonly type: ConcreteType;
}

/** A value a run assigned to a variable: staged until the run is committed or released. */
interface Staged extends Variable {
  readonly run: number;
}

/** A result kept on the worker for later partitions of its run; freed once every key is read. */
interface Kept {
  readonly buffer: DeviceBuffer;
  readonly type: ConcreteType;
  readers: number;
}

const byteSize = (t: ConcreteType) => t.shape.reduce((a, b) => a * b, 1) * (t.dtype === 'bool' ? 1 : 4);
const view = (buffer: DeviceBuffer, type: ConcreteType): BufferView => ({
  buffer,
  byteOffset: 0,
  dtype: type.dtype,
  shape: type.shape,
});
const sameType = (a: ConcreteType, b: ConcreteType) =>
  a.dtype === b.dtype && a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]);
const describe = (t: ConcreteType) => `${t.dtype}[${t.shape.join(',')}]`;

/** Sends data-plane messages to the other workers of the cluster, by name. */
export interface PeerSender {
  send(worker: string, message: PeerMessage): Promise<void>;
  /**
   * A value a peer pushed here has been copied into the device: the transport may reuse the
   * memory its bytes arrived in (see FramePool).
   */
  received?(bytes: Uint8Array): void;
}

const noPeers: PeerSender = {
  send: (worker) =>
    Promise.reject(
      new KilnError('runtime', `no data-plane link to worker '${worker}': this worker has no peers`),
    ),
};

/**
 * What a worker does with each message, apart from how messages arrive: it owns one device, the
 * partitions compiled on it, and the variables those partitions read and assign, which stay in
 * device memory between runs. Messages are handled one at a time, in order.
 *
 * A partition's assigns are staged, not stored: a variable changes only when the coordinator
 * commits the run (its whole step succeeded everywhere), and a released run's staged values are
 * dropped. A read sees the latest staged value, so a later partition or a later run of the same
 * step sees the updates the runs before it made, as it would had they been stored.
 */
export class WorkerRuntime {
  private device: LimitedDevice | null = null;
  private name = '';
  private readonly partitions = new Map<string, LoadedPartition>();
  private readonly variables = new Map<string, Variable>();
  /** Staged values by variable, in the order they were staged. */
  private readonly staged = new Map<string, Staged[]>();
  /** Each variable's type as the loaded partitions declare it: what a value set for it must be. */
  private readonly declared = new Map<string, ConcreteType>();
  /** Values kept for later partitions, by run, then by key. */
  private readonly kept = new Map<number, Map<string, Kept>>();
  private readonly recent = new RecentMessages();
  private readonly inbox: PeerInbox;

  /**
   * `device` is the plugin this worker serves, from its own start options (never from a message);
   * `limits` cap what the messages may make the device hold (see LimitedDevice).
   */
  constructor(
    private readonly deviceSpec: DeviceSpec,
    private readonly limits: Limits = DEFAULT_LIMITS,
    /** How values reach the other workers of a run (ports between threads, sockets between processes). */
    private readonly peers: PeerSender = noPeers,
    /** Where this thread says what it runs, for a watchdog on another thread (worker processes). */
    private readonly board?: ProgressBoard,
  ) {
    this.inbox = new PeerInbox(() => this.name, this.limits.maxDeviceBytes);
  }

  /**
   * A message from another worker. Called as it arrives, outside the queue of coordinator
   * messages: a partition waiting for this value holds that queue. Returns why it was dropped, if
   * it was.
   */
  fromPeer(message: PeerMessage, from: object): Delivery {
    if (message.t !== 'tensor') return { dropped: null };
    return this.inbox.deliver(message.run, message.key, message.tensor, from);
  }

  /** Drops what a peer connection pushed and nobody read (it was closed for flooding). */
  forgetPeer(from: object): number {
    return this.inbox.forget(from);
  }

  /**
   * The coordinator ended these runs: partitions waiting for their values give up at once. Called
   * as the release arrives, before it waits its turn in the queue behind those very partitions.
   */
  ending(runs: readonly number[]): void {
    this.inbox.end(runs);
  }

  /** Handles one message; returns the reply, if the message has one (see accept). */
  async handle(message: ToWorker): Promise<FromWorker | null> {
    return (await this.accept(message)).reply;
  }

  /**
   * Handles one message as far as the next may start, and says what to reply once the reply is
   * ready. A partition's values for other workers may still be on their way to the sockets when
   * it resolves: the device is free for the next partition while the links send them, and the
   * reply ('done', or 'failed' where a send failed) comes once they are written. The caller sends
   * replies in the order the messages came. A request or a run's partition that was handled
   * before is not handled again: it gets the earlier reply, or a refusal where that reply carried
   * tensors (which are not kept) or is not ready yet.
   */
  async accept(message: ToWorker): Promise<{ readonly reply: Promise<FromWorker | null> }> {
    const key = RecentMessages.key(message);
    if (key !== null && this.recent.has(key))
      return { reply: Promise.resolve(this.recent.reply(key) ?? this.duplicate(message)) };
    let reply: Promise<FromWorker | null>;
    try {
      reply =
        message.t === 'run' ? (await this.run(message)).reply : Promise.resolve(await this.dispatch(message));
    } catch (e) {
      reply = Promise.resolve(failure(message, e));
    }
    reply = reply.catch((e: unknown) => failure(message, e));
    if (key !== null) {
      this.recent.remember(key, null);
      void reply.then((r) => this.recent.remember(key, r));
    }
    return { reply };
  }

  async dispose(): Promise<void> {
    for (const p of this.partitions.values()) p.executable.dispose();
    this.partitions.clear();
    for (const v of this.variables.values()) this.device?.free(v.buffer);
    this.variables.clear();
    for (const list of this.staged.values()) for (const v of list) this.device?.free(v.buffer);
    this.staged.clear();
    await this.device?.dispose();
    this.device = null;
  }

  /** Every message but a run, whose reply comes later (see run). */
  private async dispatch(message: Exclude<ToWorker, { t: 'run' }>): Promise<FromWorker | null> {
    switch (message.t) {
      case 'hello':
        return this.hello(message);
      case 'peers':
        // Where peers are is the transport's business (it dials them); nothing to do here.
        return null;
      case 'load':
        await this.load(message);
        return { t: 'ok', request: message.request };
      case 'setVariables':
        await this.setVariables(message.variables);
        return { t: 'ok', request: message.request };
      case 'getVariables':
        return {
          t: 'variables',
          request: message.request,
          variables: await this.getVariables(message.names),
        };
      case 'dropVariables':
        for (const name of message.names) {
          const v = this.variables.get(name);
          if (v) this.device?.free(v.buffer);
          this.variables.delete(name);
          this.declared.delete(name);
        }
        return { t: 'ok', request: message.request };
      case 'unload':
        for (const key of message.partitions) {
          this.partitions.get(key)?.executable.dispose();
          this.partitions.delete(key);
        }
        return { t: 'ok', request: message.request };
      case 'commit':
        this.inbox.end(message.runs);
        this.commit(message.runs);
        return null;
      case 'release':
        this.inbox.end(message.runs);
        this.release(message.runs);
        return null;
      case 'close':
        await this.dispose();
        return null;
    }
  }

  private get ready(): Device {
    if (!this.device)
      throw new KilnError('protocol', 'protocol: a worker must be greeted (hello) before use');
    return this.device;
  }

  private async hello(message: Extract<ToWorker, { t: 'hello' }>): Promise<FromWorker> {
    if (message.version !== PROTOCOL_VERSION) {
      throw new KilnError(
        'protocol',
        `protocol version ${message.version} is not supported (this worker speaks ${PROTOCOL_VERSION})`,
      );
    }
    if (this.device) throw new KilnError('protocol', `protocol: worker '${this.name}' was already greeted`);
    const registry = new DeviceRegistry();
    const plugin = await registry.registerPackage(this.deviceSpec.module);
    const device = await registry.create(plugin.kind, { name: message.worker, ...this.deviceSpec.options });
    this.device = new LimitedDevice(device, this.limits);
    this.name = message.worker;
    return {
      t: 'ready',
      version: PROTOCOL_VERSION,
      worker: message.worker,
      device: describeCapabilities(device),
    };
  }

  private async load(message: Extract<ToWorker, { t: 'load' }>): Promise<void> {
    const device = this.ready;
    const subgraph = subgraphFromBytes(message.graph);
    if (
      message.inputs.length !== subgraph.inputs.length ||
      message.outputs.length !== subgraph.results.length
    ) {
      throw new KilnError(
        'protocol',
        `partition ${message.partition}: ${message.inputs.length} inputs and ${message.outputs.length} outputs declared, the subgraph has ${subgraph.inputs.length} and ${subgraph.results.length}`,
      );
    }
    const memory: MemoryLayout | undefined = message.memory
      ? {
          order: message.memory.order,
          arenaBytes: message.memory.arenaBytes,
          offsets: new Map(message.memory.offsets.map(([v, o]) => [v, o])),
        }
      : undefined;
    // The coordinator expanded what this device declines when it planned (from the capabilities it
    // reported); expanding here too keeps a worker whose answers changed correct. A subgraph that
    // changed no longer matches the planned layout, so it is then compiled without one.
    const expanded = expandComposites(subgraph, device).subgraph;
    const executable = await device.compile(expanded, memory && expanded === subgraph ? { memory } : {});
    this.partitions.get(message.partition)?.executable.dispose();
    const loaded: LoadedPartition = {
      executable,
      inputs: message.inputs,
      inputTypes: subgraph.inputs.map((v) => subgraph.values[v]!.type as ConcreteType),
      outputs: message.outputs,
      outputTypes: subgraph.results.map((v) => subgraph.values[v]!.type as ConcreteType),
    };
    this.partitions.set(message.partition, loaded);
    loaded.inputs.forEach((input, i) => {
      if (input.kind === 'variable') this.declared.set(input.name, loaded.inputTypes[i]!);
    });
    loaded.outputs.forEach((output, k) => {
      if (output.kind === 'assign') this.declared.set(output.name, loaded.outputTypes[k]!);
    });
  }

  /**
   * Runs a partition; resolves once its device work is done, with its reply, which waits for
   * the values it pushes to be written (their buffers are freed only then).
   */
  private async run(
    message: Extract<ToWorker, { t: 'run' }>,
  ): Promise<{ readonly reply: Promise<FromWorker> }> {
    const device = this.ready;
    const start = performance.now();
    const partition = this.partitions.get(message.partition);
    if (!partition)
      throw new KilnError('protocol', `partition ${message.partition} is not loaded on this worker`);
    // Its values would be staged for a run that will never be committed or released again.
    if (this.recent.hasEnded(message.run))
      throw new KilnError(
        'protocol',
        `run ${message.run} has already ended on worker '${this.name}' (committed or released); partition ${message.partition} is not run for it`,
      );
    const args = partition.inputs.filter((i) => i.kind === 'arg').length;
    const kept = this.kept.get(message.run) ?? new Map<string, Kept>();
    if (message.args.length !== args)
      throw new KilnError(
        'protocol',
        `partition ${message.partition} takes ${args} arguments, the run sent ${message.args.length}`,
      );
    const scratch: DeviceBuffer[] = [];
    /** Sends under way: a buffer one reads is freed only once it has been written (or failed). */
    const pushes: Promise<void>[] = [];
    const allocate = (bytes: number) => {
      const b = device.allocate(bytes);
      scratch.push(b);
      return b;
    };
    try {
      let next = 0;
      const inputs = await Promise.all(
        partition.inputs.map(async (input, i) => {
          const type = partition.inputTypes[i]!;
          if (input.kind === 'variable') {
            const variable = this.current(input.name);
            if (!variable)
              throw new KilnError(
                'runtime',
                `variable '${input.name}' has no value on worker '${this.name}'`,
              );
            if (!sameType(variable.type, type))
              throw new KilnError(
                'runtime',
                `partition ${message.partition} reads variable '${input.name}' as ${describe(type)}, but worker '${this.name}' holds ${describe(variable.type)}`,
              );
            return view(variable.buffer, variable.type);
          }
          if (input.kind === 'local') {
            const value = kept.get(input.name);
            if (!value)
              throw new KilnError(
                'protocol',
                `partition ${message.partition}: value ${input.name} was not kept on worker '${this.name}' for run ${message.run}`,
              );
            return view(value.buffer, value.type);
          }
          const arg =
            input.kind === 'peer' ? await this.inbox.take(message.run, input.name) : message.args[next++]!;
          if (!sameType(wireType(arg), type))
            throw new KilnError(
              'protocol',
              `partition ${message.partition} input ${i}: expected ${describe(type)}, got ${describe(wireType(arg))}`,
            );
          const buffer = allocate(arg.bytes.byteLength);
          await device.write(buffer, 0, arg.bytes);
          if (input.kind === 'peer') this.peers.received?.(arg.bytes);
          return view(buffer, type);
        }),
      );
      const outputs = partition.outputTypes.map((type) => view(allocate(byteSize(type)), type));
      const board = this.board;
      board?.started(message.partition);
      try {
        await partition.executable.run(inputs, outputs, board ? (node) => board.node(node) : undefined);
      } finally {
        board?.finished();
      }
      const results: WireTensor[] = [];
      // Local inputs are read: each key has one reader, so its buffer may go once all are read.
      for (const input of partition.inputs) {
        if (input.kind !== 'local') continue;
        const value = kept.get(input.name)!;
        kept.delete(input.name);
        this.unread(value);
      }
      for (const [k, output] of partition.outputs.entries()) {
        const type = partition.outputTypes[k]!;
        const keys = output.keep ?? [];
        if (keys.length > 0) {
          // Kept where it is: the buffer leaves scratch and waits for this run's later partitions.
          const buffer = outputs[k]!.buffer;
          scratch.splice(scratch.indexOf(buffer), 1);
          const value: Kept = { buffer, type, readers: keys.length };
          for (const key of keys) kept.set(key, value);
          this.kept.set(message.run, kept);
        }
        if (output.push?.length) {
          // Straight to the workers that read it, never through the coordinator. A send resolves
          // once the socket has taken the bytes (a port to a thread copies them into shared memory
          // at once), so the device's own memory can go out as it lies: the buffer is freed or
          // reused only after (a kept one counts the send as one more reader).
          const bytes = await lend(device, outputs[k]!.buffer, byteSize(type));
          const tensor: WireTensor = { dtype: type.dtype, shape: [...type.shape], bytes };
          const sent = Promise.all(
            output.push.map(([worker, key]) =>
              this.peers.send(worker, { t: 'tensor', run: message.run, key, tensor }),
            ),
          );
          const value = keys.length > 0 ? kept.get(keys[0]!) : undefined;
          if (value) {
            value.readers++;
            void sent.then(
              () => this.unread(value),
              () => this.unread(value),
            );
          }
          const pushed = sent.then(() => undefined);
          // Its failure is the reply's (below), or moot if the run fails first: never unhandled.
          pushed.catch(() => undefined);
          pushes.push(pushed);
        }
        if (output.kind === 'keep') continue;
        if (output.kind === 'assign') {
          // The result's buffer is staged as is (no copy); it becomes the variable's on commit.
          const buffer = outputs[k]!.buffer;
          scratch.splice(scratch.indexOf(buffer), 1);
          const list = this.staged.get(output.name) ?? [];
          list.push({ run: message.run, buffer, type });
          this.staged.set(output.name, list);
        } else {
          results.push(wireFromDevice(type, await lend(device, outputs[k]!.buffer, byteSize(type))));
        }
      }
      if (kept.size === 0) this.kept.delete(message.run);
      const done: FromWorker = {
        t: 'done',
        run: message.run,
        partition: message.partition,
        results,
        seconds: (performance.now() - start) / 1e3,
      };
      return { reply: Promise.all(pushes).then(() => done) };
    } finally {
      const free = () => {
        for (const b of scratch) this.device?.free(b);
      };
      if (pushes.length > 0) void Promise.allSettled(pushes).then(free);
      else free();
    }
  }

  /** One reader of a kept value is done with it: the last frees it. */
  private unread(value: Kept): void {
    if (--value.readers === 0) this.device?.free(value.buffer);
  }

  /** What a partition reading the variable sees now: its latest staged value, else its value. */
  private current(name: string): Variable | undefined {
    return this.staged.get(name)?.at(-1) ?? this.variables.get(name);
  }

  /** The runs' staged values become the variables' values, in the order they were staged. */
  private commit(runs: readonly number[]): void {
    const committed = new Set(runs);
    for (const [name, list] of this.staged) {
      for (const value of list) {
        if (!committed.has(value.run)) continue;
        const old = this.variables.get(name);
        this.variables.set(name, { buffer: value.buffer, type: value.type });
        if (old) this.device?.free(old.buffer);
      }
      this.restage(
        name,
        list.filter((v) => !committed.has(v.run)),
      );
    }
    this.end(runs);
  }

  /** Drops what the runs kept and staged: they failed or were cancelled, and change nothing. */
  private release(runs: readonly number[]): void {
    const released = new Set(runs);
    for (const [name, list] of this.staged) {
      for (const value of list) if (released.has(value.run)) this.device?.free(value.buffer);
      this.restage(
        name,
        list.filter((v) => !released.has(v.run)),
      );
    }
    this.end(runs);
  }

  private restage(name: string, list: Staged[]): void {
    if (list.length > 0) this.staged.set(name, list);
    else this.staged.delete(name);
  }

  /** Frees what the runs still keep (nothing, once they finished) and remembers they ended. */
  private end(runs: readonly number[]): void {
    for (const run of runs) {
      const kept = this.kept.get(run);
      this.kept.delete(run);
      for (const value of new Set(kept?.values())) this.device?.free(value.buffer);
      this.recent.ended(run);
    }
  }

  /**
   * Every value is checked against the type the worker knows for its variable (its value's, else
   * the loaded partitions'), and written, before any variable changes: a refused call changes none.
   */
  private async setVariables(variables: readonly (readonly [string, WireTensor])[]): Promise<void> {
    const device = this.ready;
    for (const [name, value] of variables) {
      const type = wireType(value);
      const known = this.variables.get(name)?.type ?? this.declared.get(name);
      if (known && !sameType(known, type))
        throw new KilnError(
          'invalid-argument',
          `variable '${name}' is ${describe(known)} on worker '${this.name}', got ${describe(type)}`,
        );
    }
    const written: Variable[] = [];
    try {
      for (const [, value] of variables) {
        const buffer = device.allocate(value.bytes.byteLength);
        written.push({ buffer, type: wireType(value) });
        await device.write(buffer, 0, value.bytes);
      }
    } catch (e) {
      for (const v of written) device.free(v.buffer);
      throw e;
    }
    variables.forEach(([name], i) => {
      const old = this.variables.get(name);
      this.variables.set(name, written[i]!);
      if (old) device.free(old.buffer);
    });
  }

  /** The answer to a message handled before whose reply was not kept. */
  private duplicate(message: ToWorker): FromWorker {
    const what =
      message.t === 'run'
        ? `partition ${message.partition} of run ${message.run} was already run on worker '${this.name}'; a run sent twice is not run twice`
        : `request ${'request' in message ? message.request : '?'} was already answered on worker '${this.name}', with tensors it does not keep; send a new request`;
    return failure(message, new KilnError('protocol', what));
  }

  private async getVariables(names: readonly string[]): Promise<[string, WireTensor][]> {
    const device = this.ready;
    const out: [string, WireTensor][] = [];
    for (const name of names) {
      const v = this.variables.get(name);
      if (!v) throw new KilnError('invalid-argument', `worker '${this.name}' holds no variable '${name}'`);
      out.push([name, wireFromDevice(v.type, await lend(device, v.buffer, byteSize(v.type)))]);
    }
    return out;
  }
}

/**
 * A buffer's bytes for a caller that copies them, or hands them to a socket, before the buffer is
 * freed or written: the device's memory as it lies where the device lends it (a CPU), else a read.
 */
function lend(device: Device, buffer: DeviceBuffer, byteLength: number): Uint8Array | Promise<Uint8Array> {
  return device.view ? device.view(buffer, 0, byteLength) : device.read(buffer, 0, byteLength);
}

/** The 'failed' reply to a message, saying what it was for and why. */
function failure(message: ToWorker, e: unknown): FromWorker {
  return {
    t: 'failed',
    run: message.t === 'run' ? message.run : null,
    partition: message.t === 'run' || message.t === 'load' ? message.partition : null,
    request: 'request' in message ? message.request : null,
    error: {
      code: e instanceof KilnError ? e.code : 'runtime',
      message: e instanceof Error ? e.message : String(e),
    },
  };
}
