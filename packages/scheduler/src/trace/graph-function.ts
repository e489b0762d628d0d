import {
  type Graph,
  KilnError,
  optimize,
  type PassReport,
  passesFor,
  requiredNodes,
  type SymbolicTensor,
} from '@kiln/ir';
import type { EagerContext } from '../eager/context.js';
import type { Tensor } from '../eager/tensor.js';
import { Program } from '../program/program.js';

/**
 * A captured graph made callable on eager tensors: its inputs are the function's tensor
 * arguments and then the tensors it closed over (read at each call, so updated weights are seen).
 * The graph is optimized (constant folding, dead-code elimination, through control flow too) and
 * runs as a Program: one compiled executable when it has no control flow.
 */
export class GraphFunction {
  private readonly program: Program;
  /** What each optimization pass did to the captured graph. */
  readonly optimizations: readonly PassReport[];

  constructor(
    readonly eager: EagerContext,
    readonly graph: Graph,
    readonly inputs: readonly SymbolicTensor[],
    readonly captures: readonly Tensor[],
    readonly captureInputs: readonly SymbolicTensor[],
    readonly outputs: readonly SymbolicTensor[],
    readonly name: string,
  ) {
    // The outputs are the roots the passes keep; inputs are placeholders, which they always keep.
    const roots = Object.fromEntries(outputs.map((t, i) => [`result${i}`, t.id]));
    const {
      graph: optimized,
      valueMap,
      report,
    } = optimize({ ...graph, initializers: [], outputs: roots }, passesFor(eager.device));
    this.optimizations = report;
    const bound = [...inputs, ...captureInputs].map((t) => valueMap.get(t.id)!);
    const outs = outputs.map((t) => valueMap.get(t.id)!);
    this.program = new Program(eager, optimized, requiredNodes(optimized, outs), bound, outs, { name });
  }

  /**
   * Runs on tensor arguments. Control flow reads predicates on the host, so a graph with control
   * flow on a device that cannot read synchronously must use callAsync.
   */
  call(args: readonly Tensor[]): Tensor[] {
    this.checkArity(args);
    const run = this.program.run([...args, ...this.captures]);
    let r = run.next();
    while (!r.done) {
      if (!this.eager.canReadSync) {
        void run.return([]);
        throw new KilnError(
          'invalid-argument',
          `${this.name} has control flow and ${this.eager.device.name} reads asynchronously: use callAsync`,
        );
      }
      r = run.next(r.value.item());
    }
    return r.value;
  }

  callAsync(args: readonly Tensor[]): Promise<Tensor[]> {
    this.checkArity(args);
    return this.program.runAsync([...args, ...this.captures]);
  }

  dispose(): void {
    this.program.dispose();
  }

  private checkArity(args: readonly Tensor[]): void {
    if (args.length !== this.inputs.length) {
      throw new KilnError(
        'invalid-argument',
        `${this.name}: expected ${this.inputs.length} tensor arguments, got ${args.length}`,
      );
    }
  }
}
