import {
  formatShape,
  KilnError,
  type ParsedScript,
  parseScript,
  type ScriptableFunction,
  type ScriptedGraph,
  type ScriptOptions,
  type TensorType,
} from '@kiln/ir';
import { defaultEagerContext } from '../eager/context.js';
import { Tensor } from '../eager/tensor.js';
import { GraphFunction } from '../trace/graph-function.js';
import { installFileLocator } from './file-locator.js';

installFileLocator();

export interface ScriptedFunction {
  /** Runs on eager tensors; a function returning an array returns an array. */
  (...args: Tensor[]): Tensor | Tensor[];
  /** The same, for devices that read asynchronously (control flow reads predicates). */
  callAsync(...args: Tensor[]): Promise<Tensor | Tensor[]>;
  /** The IR for inputs of these types: what gets serialized or inspected. */
  lower(...inputTypes: TensorType[]): ScriptedGraph;
  readonly parsed: ParsedScript;
  /** Signatures lowered and compiled so far. */
  readonly compiled: number;
}

/**
 * TorchScript's script: reads `fn`'s source and lowers it, data-dependent `if` and `while`
 * included, into the IR's cond and while ops, so the graph follows the data for every input
 * (unlike a trace). The source is parsed and checked against the subset now; each new input
 * signature is lowered and compiled once. Captured tensors (options.captures) are graph inputs,
 * bound to their current values at each call; captured numbers are constants.
 */
export function script(fn: ScriptableFunction, options: ScriptOptions = {}): ScriptedFunction {
  const parsed = parseScript(fn, options);
  const cache = new Map<string, { fn: GraphFunction; structure: 'single' | 'array' }>();

  const prepare = (args: readonly Tensor[]) => {
    args.forEach((a, i) => {
      if (!(a instanceof Tensor))
        throw new KilnError('invalid-argument', `script '${parsed.name}': argument ${i} is not a tensor`);
    });
    const eager = args[0]?.context ?? defaultEagerContext();
    const key = args.map((a) => `${a.dtype}${formatShape(a.shape)}@${a.device}`).join(';');
    let entry = cache.get(key);
    if (!entry) {
      const lowered = parsed.lower(args);
      const captures = lowered.captureInputs.map((c) => {
        if (!(c.source instanceof Tensor) || c.source.context !== eager) {
          throw new KilnError(
            'invalid-argument',
            `script '${parsed.name}': capture '${c.name}' must be an eager tensor on ${eager.device.name}`,
          );
        }
        return c.source;
      });
      const gf = new GraphFunction(
        eager,
        lowered.graph,
        lowered.inputs,
        captures,
        lowered.captureInputs.map((c) => c.placeholder),
        lowered.outputs,
        `script '${parsed.name}'`,
      );
      entry = { fn: gf, structure: lowered.outputStructure };
      cache.set(key, entry);
    }
    return entry;
  };
  const shape = (structure: 'single' | 'array', outs: Tensor[]) => (structure === 'single' ? outs[0]! : outs);

  const scripted = (...args: Tensor[]) => {
    const entry = prepare(args);
    return shape(entry.structure, entry.fn.call(args));
  };
  Object.assign(scripted, {
    callAsync: async (...args: Tensor[]) => {
      const entry = prepare(args);
      return shape(entry.structure, await entry.fn.callAsync(args));
    },
    lower: (...inputTypes: TensorType[]) => parsed.lower(inputTypes),
    parsed,
  });
  // A getter, not a copied value: the count grows as signatures are compiled.
  Object.defineProperty(scripted, 'compiled', { get: () => cache.size });
  return scripted as ScriptedFunction;
}
