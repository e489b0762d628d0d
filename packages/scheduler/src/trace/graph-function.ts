import {
  type ConcreteType,
  type Executable,
  extractSubgraph,
  type Graph,
  KilnError,
  requiredNodes,
  type SymbolicTensor,
  type ValueId,
} from '@kiln/ir';
import type { EagerContext } from '../eager/context.js';
import type { Tensor } from '../eager/tensor.js';

/**
 * A captured graph made callable on eager tensors: its inputs are the function's tensor
 * arguments and then the tensors it closed over (read at each call, so updated weights are seen);
 * the device compiles the pruned graph once, and each call binds buffers and runs it.
 */
export class GraphFunction {
  private readonly exe: Executable | Promise<Executable>;
  readonly outputTypes: readonly ConcreteType[];
  /** Nodes in the compiled graph (after pruning to the outputs). */
  readonly nodeCount: number;

  constructor(
    readonly eager: EagerContext,
    readonly graph: Graph,
    readonly inputs: readonly SymbolicTensor[],
    readonly captures: readonly Tensor[],
    readonly captureInputs: readonly SymbolicTensor[],
    readonly outputs: readonly SymbolicTensor[],
    readonly name: string,
  ) {
    const bound = [...inputs, ...captureInputs];
    const bind = new Map<ValueId, ConcreteType>(bound.map((t) => [t.id, t.type as ConcreteType]));
    const nodes = requiredNodes(
      graph,
      outputs.map((t) => t.id),
    ).filter((id) => !bound.some((b) => b.node.id === id));
    const { subgraph } = extractSubgraph(graph, { nodes, bind, results: outputs.map((t) => t.id) });
    this.nodeCount = nodes.length;
    this.outputTypes = subgraph.results.map((v) => subgraph.values[v]!.type as ConcreteType);
    const device = eager.device;
    this.exe =
      eager.synchronous && device.compileSync ? device.compileSync(subgraph) : device.compile(subgraph);
  }

  call(args: readonly Tensor[]): Tensor[] {
    if (args.length !== this.inputs.length) {
      throw new KilnError(
        'invalid-argument',
        `${this.name}: expected ${this.inputs.length} tensor arguments, got ${args.length}`,
      );
    }
    return this.eager.execute(this.exe, [...args, ...this.captures], this.outputTypes, this.name);
  }

  dispose(): void {
    void Promise.resolve(this.exe).then((e) => e.dispose());
  }
}
