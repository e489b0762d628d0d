import { DTYPE_INFO, type HostArray } from '../dtype.js';
import { KilnError } from '../errors.js';
import { atNode, type NodeId, type ValueId } from '../graph/graph.js';
import type { Subgraph } from '../graph/subgraph.js';
import type { OpName } from '../ops/index.js';
import type { ConcreteType } from '../ops/op-def.js';
import { byteSizeOf, formatType, shapesEqual, sizeOf } from '../shape.js';
import type { BufferView, Executable, MemoryLayout, RunObserver } from './device.js';
import type { KernelFactory, KernelFn } from './host-kernel.js';
import { type HostMemory, hostArray } from './host-memory.js';

interface Step {
  readonly run: KernelFn;
  readonly inputs: readonly number[];
  readonly outputs: readonly number[];
  readonly node: Subgraph['nodes'][number];
}

/** A step with the slots it reads and writes, and the arrays it is handed (refilled each run). */
interface Link {
  readonly step: Step;
  readonly inSlots: readonly number[];
  readonly outSlots: readonly number[];
  readonly ins: HostArray[];
  readonly outs: HostArray[];
}

const badLayout = (message: string) => new KilnError('invalid-argument', `memory layout: ${message}`);

/** Nonnegative safe integer. */
const isCount = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;

/**
 * The steps in the layout's order, after checking that it runs every step once, after the producers
 * of its inputs. Input placeholders (not steps) may be listed; they are skipped.
 */
function orderSteps(subgraph: Subgraph, steps: ReadonlyMap<NodeId, Step>, order: readonly NodeId[]): Step[] {
  if (!Array.isArray(order)) throw badLayout('order is not an array of node ids');
  const seen = new Set<NodeId>();
  const ordered: Step[] = [];
  for (const id of order) {
    const node = isCount(id) ? subgraph.nodes[id] : undefined;
    if (!node) throw badLayout(`order names node #${String(id)}, which the subgraph does not have`);
    if (seen.has(id)) throw badLayout(`order lists node #${id} (${node.op}) twice`);
    seen.add(id);
    const step = steps.get(id);
    if (!step) continue;
    for (const v of node.inputs) {
      const producer = subgraph.values[v]!.node;
      if (steps.has(producer) && !seen.has(producer)) {
        throw badLayout(
          `order is not topological: node #${id} (${node.op}) runs before node #${producer} (${subgraph.nodes[producer]!.op}), which produces its input %${v}`,
        );
      }
    }
    ordered.push(step);
  }
  if (ordered.length !== steps.size) {
    const missing = [...steps.keys()].filter((id) => !seen.has(id));
    throw badLayout(
      `order leaves out ${missing.length} node(s): ${missing
        .slice(0, 5)
        .map((id) => `#${id} (${subgraph.nodes[id]!.op})`)
        .join(', ')}${missing.length > 5 ? ', ...' : ''}`,
    );
  }
  return ordered;
}

/**
 * A subgraph compiled for a host device: kernels instantiated for their concrete shapes,
 * intermediate buffers allocated once, results written straight into the bound output views.
 *
 * Without a memory layout every intermediate gets its own scratch array and steps run in the
 * subgraph's node order. With one (`CompileOptions.memory`, from the scheduler's memory plan) the
 * steps run in the layout's order and every intermediate is a view at its offset inside one arena
 * allocated here, so values whose lifetimes do not overlap share bytes. The layout is checked for
 * what the executable relies on (every intermediate has an offset, aligned to its dtype, inside the
 * arena; the order is topological); that values alive together do not overlap is the planner's
 * promise (verifyPlan checks it). An elementwise output may alias an input of the same shape and
 * width that dies there: the generated loops read element i of every input before writing element i.
 */
export class HostExecutable implements Executable {
  private readonly steps: Step[] = [];
  private readonly scratch = new Map<number, HostArray>();
  /**
   * Every value's array during a run, by slot: the inputs first, then the results, then the
   * intermediates (whose arrays stay from run to run). Steps read and write slots worked out once
   * (linkSteps), and runs reuse these arrays rather than make any: an eager op's whole run costs
   * about a microsecond, and runs of one executable never overlap (they are synchronous, or take
   * turns).
   */
  private slots: HostArray[] = [];
  private readonly outArrays: HostArray[] = [];
  private links: Link[] = [];
  /** [result index, slot] pairs of the results steps compute into directly, flattened. */
  private directSlots: number[] = [];
  /** [result index, slot] pairs of the results copied in after the steps (an input passed through). */
  private copiedSlots: number[] = [];
  /** What a bad binding's error names, per position: made once, not per run. */
  private readonly inWhat: string[];
  private readonly outWhat: string[];
  /** Result positions whose value is produced by a step and can be written in place. */
  private readonly direct = new Map<number, number>();
  private readonly inTypes: ConcreteType[];
  private readonly outTypes: ConcreteType[];
  private disposed = false;
  /** Whether some kernel can run off this thread (then runs take turns: see run). */
  private readonly offThread: boolean;
  /** The last run's turn, settled or not: the next asynchronous run starts after it. */
  private turn: Promise<void> = Promise.resolve();
  /** Asynchronous runs between their first and last step. */
  private running = 0;
  /** Bytes of the arena: the layout's arenaBytes, or 0 without a layout. */
  readonly arenaBytes: number;
  /** Bytes of the per-value scratch arrays: every intermediate's size without a layout, 0 with one. */
  readonly scratchBytes: number;

  constructor(
    private readonly device: string,
    private readonly subgraph: Subgraph,
    kernelFor: (op: OpName) => KernelFactory<unknown> | undefined,
    layout?: MemoryLayout,
    /** Fresh zeroed memory for the arena (the device's: shared, or aligned, as its buffers are). */
    memory: (byteLength: number) => HostMemory = (n) => ({ bytes: new ArrayBuffer(n), start: 0 }),
  ) {
    const type = (v: number) => subgraph.values[v]!.type as ConcreteType;
    this.inTypes = subgraph.inputs.map(type);
    this.outTypes = subgraph.results.map(type);
    this.inWhat = this.inTypes.map((_, i) => `run: input ${i}`);
    this.outWhat = this.outTypes.map((_, i) => `run: output ${i}`);
    const isInput = new Set(subgraph.inputs);
    subgraph.results.forEach((v, i) => {
      if (!isInput.has(v) && ![...this.direct.values()].includes(v)) this.direct.set(i, v);
    });
    const directValues = new Set(this.direct.values());
    const steps = new Map<NodeId, Step>();
    const intermediates: ValueId[] = [];
    for (const node of subgraph.nodes) {
      if (node.op === 'placeholder' && node.outputs.every((v) => isInput.has(v))) continue;
      const factory = kernelFor(node.op);
      if (!factory)
        throw atNode(node, new KilnError('unsupported', `${device} has no kernel for ${node.op}`));
      let run: KernelFn;
      try {
        run = factory({ attrs: node.attrs, inputs: node.inputs.map(type), outputs: node.outputs.map(type) });
      } catch (e) {
        throw atNode(node, e);
      }
      steps.set(node.id, { run, inputs: node.inputs, outputs: node.outputs, node });
      for (const v of node.outputs) if (!directValues.has(v)) intermediates.push(v);
    }

    this.offThread = [...steps.values()].some((step) => step.run.offThread !== undefined);
    if (!layout) {
      this.steps.push(...steps.values());
      let bytes = 0;
      for (const v of intermediates) {
        this.scratch.set(v, DTYPE_INFO[type(v).dtype].create(sizeOf(type(v).shape)));
        bytes += byteSizeOf(type(v));
      }
      this.arenaBytes = 0;
      this.scratchBytes = bytes;
      this.linkSteps();
      return;
    }

    this.steps.push(...orderSteps(subgraph, steps, layout.order));
    const { arenaBytes, offsets } = layout;
    if (!isCount(arenaBytes)) throw badLayout(`arenaBytes must be a nonnegative integer, got ${arenaBytes}`);
    if (!(offsets instanceof Map)) throw badLayout('offsets is not a Map from value ids to byte offsets');
    const isIntermediate = new Set(intermediates);
    for (const v of offsets.keys()) {
      if (!isIntermediate.has(v)) {
        throw badLayout(
          `offsets places %${v}, which is not an intermediate of the subgraph (inputs and results live in the bound views)`,
        );
      }
    }
    const placed: [ValueId, number][] = [];
    for (const v of intermediates) {
      const t = type(v);
      const what = `%${v} (${formatType(t)}, output of node #${subgraph.values[v]!.node} ${subgraph.nodes[subgraph.values[v]!.node]!.op})`;
      const offset = offsets.get(v);
      if (offset === undefined) throw badLayout(`intermediate ${what} has no offset`);
      if (!isCount(offset)) throw badLayout(`offset ${offset} of ${what} is not a nonnegative integer`);
      const width = DTYPE_INFO[t.dtype].bytes;
      if (offset % width !== 0) {
        throw badLayout(`offset ${offset} of ${what} is not aligned to its ${width}-byte elements`);
      }
      const end = offset + byteSizeOf(t);
      if (end > arenaBytes) {
        throw badLayout(`${what} at bytes [${offset}, ${end}) does not fit the ${arenaBytes}-byte arena`);
      }
      placed.push([v, offset]);
    }
    // The one allocation holding every intermediate: the views below keep it.
    const arena = memory(arenaBytes);
    for (const [v, offset] of placed) {
      const t = type(v);
      this.scratch.set(v, DTYPE_INFO[t.dtype].view(arena.bytes, arena.start + offset, sizeOf(t.shape)));
    }
    this.arenaBytes = arenaBytes;
    this.scratchBytes = 0;
    this.linkSteps();
  }

  /** Gives every value a slot and every step the slots it reads and writes. */
  private linkSteps(): void {
    const { inputs, results } = this.subgraph;
    const slotOf = new Map<ValueId, number>();
    inputs.forEach((v, i) => slotOf.set(v, i));
    for (const [i, v] of this.direct) {
      slotOf.set(v, inputs.length + i);
      this.directSlots.push(i, inputs.length + i);
    }
    const slots: HostArray[] = [];
    for (const [v, array] of this.scratch) {
      slotOf.set(v, inputs.length + results.length + slots.length);
      slots.push(array);
    }
    this.slots = [...new Array<HostArray>(inputs.length + results.length), ...slots];
    results.forEach((v, i) => {
      if (this.direct.get(i) !== v) this.copiedSlots.push(i, slotOf.get(v)!);
    });
    this.links = this.steps.map((step) => ({
      step,
      inSlots: step.inputs.map((v) => slotOf.get(v)!),
      outSlots: step.outputs.map((v) => slotOf.get(v)!),
      ins: new Array<HostArray>(step.inputs.length),
      outs: new Array<HostArray>(step.outputs.length),
    }));
  }

  runSync(inputs: readonly BufferView[], outputs: readonly BufferView[], observe?: RunObserver): void {
    if (this.disposed) throw new KilnError('invalid-argument', 'run: the executable was disposed');
    if (this.running > 0)
      throw new KilnError(
        'runtime',
        `${this.device}: a synchronous run of an executable whose asynchronous run is still in flight (they share its intermediates)`,
      );
    this.begin(inputs, outputs);
    for (const link of this.links) {
      observe?.(link.step.node.id);
      this.gather(link);
      try {
        link.step.run(link.ins, link.outs);
      } catch (e) {
        throw atNode(link.step.node, e);
      }
    }
    this.end();
  }

  /**
   * As runSync where no kernel can leave this thread. Otherwise kernels that offer `offThread`
   * run on their own threads while this one is free, and runs of this executable wait their turn
   * (they share its intermediates).
   */
  async run(
    inputs: readonly BufferView[],
    outputs: readonly BufferView[],
    observe?: RunObserver,
  ): Promise<void> {
    if (!this.offThread) return this.runSync(inputs, outputs, observe);
    const turn = this.turn.then(() => this.runSteps(inputs, outputs, observe));
    this.turn = turn.catch(() => undefined);
    return turn;
  }

  private async runSteps(
    inputs: readonly BufferView[],
    outputs: readonly BufferView[],
    observe?: RunObserver,
  ): Promise<void> {
    if (this.disposed) throw new KilnError('invalid-argument', 'run: the executable was disposed');
    this.begin(inputs, outputs);
    this.running++;
    try {
      for (const link of this.links) {
        observe?.(link.step.node.id);
        this.gather(link);
        try {
          if (link.step.run.offThread) await link.step.run.offThread(link.ins, link.outs);
          else link.step.run(link.ins, link.outs);
        } catch (e) {
          throw atNode(link.step.node, e);
        }
      }
    } finally {
      this.running--;
    }
    this.end();
  }

  /** Binds a run's views: the inputs' and results' slots get their arrays. */
  private begin(inputs: readonly BufferView[], outputs: readonly BufferView[]): void {
    this.bind(inputs, this.inTypes, this.inWhat, this.slots);
    this.bind(outputs, this.outTypes, this.outWhat, this.outArrays);
    const { slots, outArrays, directSlots } = this;
    for (let k = 0; k < directSlots.length; k += 2) slots[directSlots[k + 1]!] = outArrays[directSlots[k]!]!;
  }

  /** Fills a step's arguments for this run into its own reused arrays. */
  private gather(link: Link): void {
    const { slots } = this;
    for (let j = 0; j < link.ins.length; j++) link.ins[j] = slots[link.inSlots[j]!]!;
    for (let j = 0; j < link.outs.length; j++) link.outs[j] = slots[link.outSlots[j]!]!;
  }

  /** Copies the results not computed in place into their views. */
  private end(): void {
    const { slots, outArrays, copiedSlots } = this;
    for (let k = 0; k < copiedSlots.length; k += 2)
      outArrays[copiedSlots[k]!]!.set(slots[copiedSlots[k + 1]!]!);
  }

  dispose(): void {
    this.disposed = true;
    this.scratch.clear();
    this.slots = [];
    this.links = [];
  }

  /** Checks each view against its type and puts its array at its position in `into`. */
  private bind(
    views: readonly BufferView[],
    types: readonly ConcreteType[],
    what: readonly string[],
    into: HostArray[],
  ): void {
    if (views.length !== types.length) {
      const role = what === this.inWhat ? 'input' : 'output';
      throw new KilnError(
        'invalid-argument',
        `run: got ${views.length} ${role} views for ${types.length} ${role}s`,
      );
    }
    for (let i = 0; i < views.length; i++) {
      const view = views[i]!;
      const t = types[i]!;
      if (view.dtype !== t.dtype || !shapesEqual(view.shape, t.shape)) {
        throw new KilnError(
          'invalid-argument',
          `${what[i]} is bound to ${formatType(view)} but the subgraph needs ${formatType(t)}`,
        );
      }
      into[i] = hostArray(this.device, view, what[i]!);
    }
  }
}
