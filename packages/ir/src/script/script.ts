import type { Node } from 'acorn';
import { type DType, isDType } from '../dtype.js';
import { invalidArgument } from '../errors.js';
import { Graph, type SymbolicTensor } from '../graph/builder.js';
import { assertValidShape, type Shape, type TensorType } from '../shape.js';
import { FunctionLowering, isCapturedTensor, Session } from './lower.js';
import { Frame } from './scope.js';
import { type FunctionNode, parseFunctionSource, type ScriptSource, scriptError } from './source.js';
import { checkSubset } from './subset.js';
import { bool, num, type SValue, tensorValue } from './values.js';

/** A tensor a script captures: anything with a dtype and a shape (an eager tensor, a handle). */
export interface ScriptTensorCapture {
  readonly dtype: DType;
  readonly shape: Shape;
}

/** Any function: `script` reads its source, it never calls it. */
export type ScriptableFunction = (...args: never[]) => unknown;

/**
 * A value from outside the function, by the name the function uses for it:
 * - a number or boolean: a constant, fixed when the script is parsed;
 * - a tensor (anything with dtype and shape): an input of the scripted graph, named after the
 *   capture, so the runtime binds its current value on every call (updated weights are seen);
 * - a scripted function (a ParsedScript, or a plain function, which is parsed): inlined where it
 *   is called.
 */
export type ScriptCapture = number | boolean | ScriptTensorCapture | ParsedScript | ScriptableFunction;

export interface ScriptOptions {
  /** The outer values the function uses (its source shows their names, never their values). */
  readonly captures?: Readonly<Record<string, ScriptCapture>>;
  /** The name errors use for the function (default: its own name). */
  readonly name?: string;
}

/** A captured tensor made a graph input: bind `source`'s current value to `placeholder` when run. */
export interface ScriptCaptureInput {
  readonly name: string;
  readonly placeholder: SymbolicTensor;
  readonly source: ScriptTensorCapture;
}

/** A scripted function lowered for one signature. */
export interface ScriptedGraph {
  readonly graph: Graph;
  /** Placeholders for the function's parameters, in order (named after them). */
  readonly inputs: SymbolicTensor[];
  /** Placeholders for the captured tensors the function reads, in the order it first reads them. */
  readonly captureInputs: ScriptCaptureInput[];
  /** What the function returns: one tensor, or the elements of the array it returns. */
  readonly outputs: SymbolicTensor[];
  readonly outputStructure: 'single' | 'array';
}

/** The parse of one function's source, shared by every ParsedScript made from that function. */
interface ParsedFunction {
  readonly source: ScriptSource;
  readonly node: FunctionNode;
}

const parsedFunctions = new WeakMap<object, ParsedFunction>();

function parseOnce(fn: unknown): ParsedFunction {
  const known = typeof fn === 'function' ? parsedFunctions.get(fn) : undefined;
  if (known) return known;
  const { source, node } = parseFunctionSource(fn);
  checkSubset(source, node);
  const parsed = { source, node: node as FunctionNode };
  parsedFunctions.set(fn as object, parsed);
  return parsed;
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

function captureValue(name: string, c: unknown): SValue {
  if (typeof c === 'number') return num(c);
  if (typeof c === 'boolean') return bool(c);
  if (c instanceof ParsedScript) return { kind: 'function', script: c };
  if (typeof c === 'function') return { kind: 'function', script: parseScript(c as ScriptableFunction) };
  if (isCapturedTensor(c)) {
    assertValidShape(c.shape, `script: capture '${name}'`, true);
    return { kind: 'capture', name, handle: c };
  }
  throw invalidArgument(
    `script: capture '${name}' is ${c === null ? 'null' : typeof c}; captures are numbers, booleans, tensors and scripted functions`,
  );
}

/**
 * A function whose source has been read, parsed and checked against the script subset (see
 * script/README.md): every construct outside it is reported here, before any input type is known.
 * `lower` turns it into a graph for given input types; the parse is kept, so lowering again for
 * another signature does not read the source again.
 */
export class ParsedScript {
  readonly name: string;
  readonly params: readonly string[];
  readonly captures: Readonly<Record<string, ScriptCapture>>;
  /** @internal */ readonly source: ScriptSource;
  /** @internal */ readonly node: FunctionNode;
  /** @internal */ readonly captureValues: ReadonlyMap<string, SValue>;

  constructor(fn: ScriptableFunction, options: ScriptOptions = {}) {
    const parsed = parseOnce(fn);
    this.source = parsed.source;
    this.node = parsed.node;
    this.name = options.name ?? parsed.source.name;
    this.params = this.node.params.map((p) => (p as Node & { name: string }).name);
    this.captures = { ...(options.captures ?? {}) };
    const values = new Map<string, SValue>();
    for (const [name, c] of Object.entries(this.captures)) {
      if (!IDENTIFIER.test(name))
        throw invalidArgument(`script: capture name '${name}' is not an identifier`);
      values.set(name, captureValue(name, c));
    }
    this.captureValues = values;
  }

  /** The graph of this function for inputs of `inputTypes` (one per parameter). */
  lower(inputTypes: readonly TensorType[]): ScriptedGraph {
    if (inputTypes.length !== this.params.length) {
      throw invalidArgument(
        `script '${this.name}': takes ${this.params.length} inputs (${this.params.join(', ')}), got ${inputTypes.length} input types`,
      );
    }
    const graph = new Graph();
    const inputs = inputTypes.map((t, i) => {
      const name = this.params[i]!;
      if (!isDType(t.dtype))
        throw invalidArgument(`script '${this.name}': input '${name}' has no valid dtype`);
      return graph.placeholder(t.dtype, t.shape, name);
    });
    const session = new Session(graph, new Frame(graph, null));
    const { value, node } = new FunctionLowering(session, this).run(
      inputs.map((t) => tensorValue(t)),
      session.root,
    );
    const array = value.kind === 'array';
    const outputs = (array ? value.items : [value]).map((v) => {
      if (v.kind === 'tensor') return v.tensor;
      if (v.kind === 'number')
        return graph.constant({ dtype: 'float32', shape: [], data: new Float32Array([v.value]) });
      if (v.kind === 'boolean')
        return graph.constant({ dtype: 'bool', shape: [], data: new Uint8Array([v.value ? 1 : 0]) });
      throw scriptError(
        this.source,
        node,
        `a scripted function returns a tensor or an array of tensors, not ${v.kind === 'array' ? 'nested arrays' : v.kind}`,
        'invalid-argument',
      );
    });
    if (array) outputs.forEach((t, i) => graph.output(`output${i}`, t));
    else graph.output('output', outputs[0]!);
    return {
      graph,
      inputs,
      captureInputs: session.captureInputs,
      outputs,
      outputStructure: array ? 'array' : 'single',
    };
  }
}

/** Reads, parses and checks `fn` (see ParsedScript); errors say where in the source, and what. */
export function parseScript(fn: ScriptableFunction, options: ScriptOptions = {}): ParsedScript {
  return new ParsedScript(fn, options);
}

/** `parseScript(fn, options).lower(inputTypes)`; a ParsedScript is lowered as it is. */
export function scriptToGraph(
  fn: ScriptableFunction | ParsedScript,
  inputTypes: readonly TensorType[],
  options: ScriptOptions = {},
): ScriptedGraph {
  return (fn instanceof ParsedScript ? fn : parseScript(fn, options)).lower(inputTypes);
}

export function isParsedScript(x: unknown): x is ParsedScript {
  return x instanceof ParsedScript;
}
