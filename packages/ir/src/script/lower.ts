import type * as A from 'acorn';
import * as api from '../api/ops.js';
import { isDType } from '../dtype.js';
import { KilnError, type KilnErrorCode } from '../errors.js';
import { type Graph, SymbolicTensor } from '../graph/builder.js';
import { mayReturn } from './analysis.js';
import { lowerIf, lowerReturningIf } from './branches.js';
import {
  MATH_CONSTANTS,
  MATH_FUNCTIONS,
  MATH_OPS,
  NOT_NAMESPACES,
  OP_FUNCTIONS,
  UNSCRIPTABLE,
} from './builtins.js';
import { lowerFor, lowerWhile } from './loops.js';
import { asTensor, binary, type EmitContext, joinType, truthOf, truthTensor, unary } from './operators.js';
import { type Binding, type Frame, readBinding, Scope, writeBinding } from './scope.js';
import type { ParsedScript, ScriptCaptureInput, ScriptTensorCapture } from './script.js';
import { ScriptError, type ScriptSource, scriptError } from './source.js';
import { sequenceCallee } from './subset.js';
import {
  bool,
  type CapturedTensor,
  describe,
  isScalarLike,
  num,
  type SValue,
  tensorValue,
  UNDEFINED,
} from './values.js';

/** How deeply scripted functions may call one another (recursion is not supported). */
const MAX_CALL_DEPTH = 32;

/** What lowering a statement list comes to: it ran to its end, or it returned a value. */
export type Outcome =
  | { readonly kind: 'fall' }
  | { readonly kind: 'return'; readonly value: SValue; readonly node: A.Node };
const FALL: Outcome = { kind: 'fall' };

/**
 * The statements after a statement that may return, up to the end of the function: when an `if`
 * returns in one branch only, the rest of its block (and of the blocks around it) is lowered into
 * the other branch, so that every path of the function ends in a return.
 */
export interface Continuation {
  readonly statements: readonly A.Statement[];
  readonly index: number;
  readonly scope: Scope;
  readonly next: Continuation | null;
}

/** State shared by every function a script inlines: the graph and its captured inputs. */
export class Session {
  readonly captureInputs: ScriptCaptureInput[] = [];
  private readonly captured = new Map<object, SymbolicTensor>();
  depth = 0;

  constructor(
    readonly graph: Graph,
    readonly root: Frame,
  ) {}

  /** The graph input standing for a captured tensor (one per tensor, however many read it). */
  captureTensor(name: string, handle: CapturedTensor): SymbolicTensor {
    const known = this.captured.get(handle);
    if (known) return known;
    const taken = new Set(
      this.graph.nodes.filter((n) => n.op === 'placeholder').map((n) => String(n.attrs.name)),
    );
    let unique = name;
    for (let i = 1; taken.has(unique); i++) unique = `${name}_${i}`;
    const placeholder = this.graph.placeholder(handle.dtype, handle.shape, unique);
    this.captured.set(handle, placeholder);
    this.captureInputs.push({ name: unique, placeholder, source: handle as ScriptTensorCapture });
    return placeholder;
  }
}

/** Lowers one function (the scripted one, or one it calls, inlined) into a session's graph. */
export class FunctionLowering {
  readonly source: ScriptSource;

  constructor(
    readonly session: Session,
    readonly script: ParsedScript,
  ) {
    this.source = script.source;
  }

  /** Binds the parameters to `args` and lowers the body; returns what the function returns. */
  run(args: readonly SValue[], frame: Frame): { value: SValue; node: A.Node } {
    const fn = this.script.node;
    const captures = new Scope(null);
    for (const [name, value] of this.script.captureValues)
      captures.declare(name, 'capture', value, this.session.root);
    const params = new Scope(captures);
    fn.params.forEach((p, i) => {
      params.declare((p as A.Identifier).name, 'param', args[i] ?? UNDEFINED, frame);
    });
    if (fn.body.type !== 'BlockStatement') return { value: this.expr(fn.body, params, frame), node: fn.body };
    const scope = this.block(fn.body.body, params, frame);
    const out = this.statements(fn.body.body, 0, scope, frame, null);
    if (out.kind === 'fall') {
      throw this.fail(
        fn.body.end - 1,
        'the function can reach its end without returning: every path must return a tensor or an array of tensors',
      );
    }
    return out;
  }

  // ---------------------------------------------------------------- errors and contexts

  fail(at: number | A.Node, message: string, code: KilnErrorCode = 'invalid-argument'): ScriptError {
    return scriptError(this.source, at, message, code);
  }

  /** An error from building the graph, located at the expression that built it. */
  wrap(at: A.Node, e: unknown): KilnError {
    if (e instanceof ScriptError) return e;
    if (e instanceof KilnError) return scriptError(this.source, at, e.message, e.code, e);
    return scriptError(this.source, at, e instanceof Error ? e.message : String(e), 'invalid-argument', e);
  }

  ctx(frame: Frame, at: A.Node): EmitContext {
    return {
      frame,
      fail: (message, code) => {
        throw this.fail(at, message, code);
      },
      emit: (build) => {
        try {
          return build();
        } catch (e) {
          throw this.wrap(at, e);
        }
      },
    };
  }

  // ---------------------------------------------------------------- variables

  /** A block's scope, with its let/const declared up front (read before their declaration: error). */
  block(statements: readonly A.Statement[], parent: Scope, frame: Frame): Scope {
    const scope = new Scope(parent);
    for (const s of statements) {
      if (s.type !== 'VariableDeclaration') continue;
      for (const d of s.declarations) {
        scope.declare(
          (d.id as A.Identifier).name,
          s.kind as 'let' | 'const',
          { kind: 'uninitialized' },
          frame,
        );
      }
    }
    return scope;
  }

  /** A variable's value, as a value of `frame` (tensors of outer frames are captured). */
  read(b: Binding, frame: Frame, at: A.Node): SValue {
    const v = readBinding(b, frame);
    if (v.kind === 'uninitialized') throw this.fail(at, `'${b.name}' is used before its declaration`);
    return this.adapt(v, frame);
  }

  adapt(v: SValue, frame: Frame): SValue {
    switch (v.kind) {
      case 'tensor':
        return v.tensor.graph === frame.graph ? v : tensorValue(frame.use(v.tensor), v.scalar);
      case 'capture':
        // A probe (see Frame) must not add graph inputs: it reads a stand-in.
        return tensorValue(
          frame.probe ? frame.param(v.handle) : frame.use(this.session.captureTensor(v.name, v.handle)),
        );
      case 'array':
        return { kind: 'array', items: v.items.map((x) => this.adapt(x, frame)) };
      case 'object':
        return {
          kind: 'object',
          entries: new Map([...v.entries].map(([k, x]) => [k, this.adapt(x, frame)])),
        };
      default:
        return v;
    }
  }

  /** The variable an assignment writes, checked: declared, not const, not captured. */
  target(id: A.Identifier, scope: Scope, frame: Frame): Binding {
    const b = scope.lookup(id.name);
    if (!b) throw this.fail(id, `'${id.name}' is not declared`);
    if (b.kind === 'const') throw this.fail(id, `'${id.name}' is a const and cannot be assigned`);
    if (b.kind === 'capture')
      throw this.fail(id, `'${id.name}' is captured, and captured values are read-only`);
    if (readBinding(b, frame).kind === 'uninitialized')
      throw this.fail(id, `'${id.name}' is assigned before its declaration`);
    return b;
  }

  // ---------------------------------------------------------------- statements

  /**
   * Lowers `statements` from `index`. A statement that may return takes the rest of the list (and
   * the continuation) with it; when there is a continuation, reaching the end goes on with it.
   */
  statements(
    statements: readonly A.Statement[],
    index: number,
    scope: Scope,
    frame: Frame,
    next: Continuation | null,
  ): Outcome {
    for (let i = index; i < statements.length; i++) {
      const s = statements[i]!;
      if (mayReturn(s)) return this.returning(s, scope, frame, { statements, index: i + 1, scope, next });
      this.statement(s, scope, frame);
    }
    return next ? this.statements(next.statements, next.index, next.scope, frame, next.next) : FALL;
  }

  /** A statement that contains a return; `rest` is what follows it. */
  returning(s: A.Statement, scope: Scope, frame: Frame, rest: Continuation): Outcome {
    switch (s.type) {
      case 'ReturnStatement':
        return { kind: 'return', value: this.expr(s.argument!, scope, frame), node: s };
      case 'BlockStatement':
        return this.statements(s.body, 0, this.block(s.body, scope, frame), frame, rest);
      case 'IfStatement':
        return lowerReturningIf(this, s, scope, frame, rest);
      default:
        throw this.fail(s, `'${s.type}' cannot return here`, 'unsupported');
    }
  }

  /** A statement, or an if branch, as a block of its own (a single statement gets a scope too). */
  body(s: A.Statement | null | undefined, scope: Scope, frame: Frame, rest: Continuation | null): Outcome {
    if (!s) return this.statements([], 0, scope, frame, rest);
    const list = s.type === 'BlockStatement' ? s.body : [s];
    return this.statements(list, 0, this.block(list, scope, frame), frame, rest);
  }

  statement(s: A.Statement, scope: Scope, frame: Frame): void {
    switch (s.type) {
      case 'EmptyStatement':
        return;
      case 'VariableDeclaration':
        this.declaration(s, scope, frame);
        return;
      case 'ExpressionStatement':
        if (s.directive !== undefined) return;
        this.effect(s.expression as A.Expression, scope, frame);
        return;
      case 'BlockStatement':
        this.body(s, scope, frame, null);
        return;
      case 'IfStatement':
        lowerIf(this, s, scope, frame);
        return;
      case 'WhileStatement':
        lowerWhile(this, s, scope, frame);
        return;
      case 'ForStatement':
        lowerFor(this, s, scope, frame);
        return;
      default:
        throw this.fail(s, `'${s.type}' is not supported`, 'unsupported');
    }
  }

  declaration(s: A.VariableDeclaration, scope: Scope, frame: Frame): void {
    for (const d of s.declarations) {
      const id = d.id as A.Identifier;
      const value = this.expr(d.init!, scope, frame);
      const b =
        scope.vars.get(id.name) ??
        scope.declare(id.name, s.kind as 'let' | 'const', { kind: 'uninitialized' }, frame);
      writeBinding(b, value, frame);
    }
  }

  /** An expression statement or for clause: an assignment, an update, or a call. */
  effect(e: A.Expression, scope: Scope, frame: Frame): void {
    if (e.type === 'AssignmentExpression') {
      const id = e.left as A.Identifier;
      const rhs = this.expr(e.right, scope, frame);
      const b = this.target(id, scope, frame);
      const value =
        e.operator === '='
          ? rhs
          : binary(this.ctx(frame, e), e.operator.slice(0, -1), this.read(b, frame, id), rhs, e.operator);
      writeBinding(b, value, frame);
      return;
    }
    if (e.type === 'UpdateExpression') {
      const id = e.argument as A.Identifier;
      const b = this.target(id, scope, frame);
      const op = e.operator === '++' ? '+' : '-';
      writeBinding(b, binary(this.ctx(frame, e), op, this.read(b, frame, id), num(1), e.operator), frame);
      return;
    }
    this.expr(e, scope, frame);
  }

  // ---------------------------------------------------------------- expressions

  expr(e: A.Expression, scope: Scope, frame: Frame): SValue {
    switch (e.type) {
      case 'Literal':
        return this.literal(e);
      case 'Identifier':
        return this.identifier(e, scope, frame);
      case 'ArrayExpression':
        return { kind: 'array', items: e.elements.map((x) => this.expr(x as A.Expression, scope, frame)) };
      case 'ObjectExpression': {
        const entries = new Map<string, SValue>();
        for (const p of e.properties as A.Property[]) {
          const key = p.key.type === 'Identifier' ? p.key.name : String((p.key as A.Literal).value);
          entries.set(key, this.expr(p.value, scope, frame));
        }
        return { kind: 'object', entries };
      }
      case 'UnaryExpression':
        return unary(this.ctx(frame, e), e.operator, this.expr(e.argument, scope, frame));
      case 'BinaryExpression':
        return binary(
          this.ctx(frame, e),
          e.operator,
          this.expr(e.left as A.Expression, scope, frame),
          this.expr(e.right, scope, frame),
        );
      case 'LogicalExpression':
        return this.logical(e, scope, frame);
      case 'ConditionalExpression':
        return this.conditional(e, scope, frame);
      case 'MemberExpression':
        return this.member(e, scope, frame);
      case 'CallExpression':
        return this.call(e, scope, frame);
      default:
        throw this.fail(e, `'${e.type}' is not supported`, 'unsupported');
    }
  }

  private literal(e: A.Literal): SValue {
    const v = e.value;
    if (typeof v === 'number') return num(v);
    if (typeof v === 'boolean') return bool(v);
    if (typeof v === 'string') return { kind: 'string', value: v };
    if (v === null) return { kind: 'null' };
    throw this.fail(e, `the literal ${e.raw ?? ''} is not supported`, 'unsupported');
  }

  private identifier(e: A.Identifier, scope: Scope, frame: Frame): SValue {
    const b = scope.lookup(e.name);
    if (b) return this.read(b, frame, e);
    if (e.name === 'undefined') return UNDEFINED;
    if (e.name === 'NaN') return num(Number.NaN);
    if (e.name === 'Infinity') return num(Number.POSITIVE_INFINITY);
    if (OP_FUNCTIONS.has(e.name) || e.name === 'Math')
      throw this.fail(e, `'${e.name}' can only be called here: functions are not values in a script`);
    throw this.fail(
      e,
      `'${e.name}' is not defined in the script: a script sees only its parameters, its own variables and its captures (pass outer values in \`captures\`)`,
    );
  }

  private logical(e: A.LogicalExpression, scope: Scope, frame: Frame): SValue {
    const ctx = this.ctx(frame, e);
    const a = this.expr(e.left, scope, frame);
    const ta = truthOf(ctx, a);
    const and = e.operator === '&&';
    // Known now: JavaScript's short circuit, exactly.
    if ('known' in ta) return ta.known === and ? this.expr(e.right, scope, frame) : a;
    // Read from a tensor: both sides are lowered (they have no effects), and the result is a boolean.
    const tb = truthOf(ctx, this.expr(e.right, scope, frame));
    if ('known' in tb) return tb.known === and ? tensorValue(ta.tensor, true) : bool(tb.known);
    const op = and ? api.logicalAnd : api.logicalOr;
    return tensorValue(
      ctx.emit(() => op(ta.tensor, tb.tensor)),
      true,
    );
  }

  private conditional(e: A.ConditionalExpression, scope: Scope, frame: Frame): SValue {
    const ctx = this.ctx(frame, e);
    const test = truthOf(ctx, this.expr(e.test, scope, frame));
    if ('known' in test) return this.expr(test.known ? e.consequent : e.alternate, scope, frame);
    // Both sides have no effects, so choosing elementwise after computing both is the same.
    const a = this.expr(e.consequent, scope, frame);
    const b = this.expr(e.alternate, scope, frame);
    const joined = joinType(a, b);
    if (typeof joined === 'string') {
      throw this.fail(
        e,
        `the two sides of '?:' (${describe(a)} and ${describe(b)}) cannot be joined: ${joined}`,
      );
    }
    const x = asTensor(ctx, a, joined.dtype);
    const y = asTensor(ctx, b, joined.dtype);
    return tensorValue(
      ctx.emit(() => api.where(truthTensor(ctx, test), x, y)),
      joined.scalar,
    );
  }

  private member(e: A.MemberExpression, scope: Scope, frame: Frame): SValue {
    if (!e.computed) {
      const prop = (e.property as A.Identifier).name;
      if (e.object.type === 'Identifier' && e.object.name === 'Math' && !scope.lookup('Math')) {
        const c = MATH_CONSTANTS.get(prop);
        if (c === undefined) throw this.fail(e, `'Math.${prop}' is not supported here`, 'unsupported');
        return num(c);
      }
      const obj = this.expr(e.object as A.Expression, scope, frame);
      if (obj.kind === 'tensor' && !obj.scalar) {
        if (prop === 'shape')
          return {
            kind: 'array',
            items: obj.tensor.shape.map((d) => (d === null ? { kind: 'null' } : num(d))),
          };
        if (prop === 'dtype') return { kind: 'string', value: obj.tensor.dtype };
        if (prop === 'rank') return num(obj.tensor.shape.length);
        if (prop === 'size') {
          const shape = obj.tensor.shape;
          if (shape.every((d) => d !== null)) return num(shape.reduce((a, b) => a * b, 1));
          throw this.fail(e, `the size of ${describe(obj)} is not known when the script is lowered`);
        }
        throw this.fail(
          e.property,
          `'.${prop}' of a tensor is not supported in a script (only .shape, .dtype, .rank, .size and methods)`,
          'unsupported',
        );
      }
      if (obj.kind === 'array' && prop === 'length') return num(obj.items.length);
      if (obj.kind === 'object') return obj.entries.get(prop) ?? UNDEFINED;
      throw this.fail(e.property, `'.${prop}' of ${describe(obj)} is not supported`, 'unsupported');
    }
    const obj = this.expr(e.object as A.Expression, scope, frame);
    const index = this.expr(e.property as A.Expression, scope, frame);
    if (obj.kind !== 'array' || index.kind !== 'number')
      throw this.fail(e, `indexing ${describe(obj)} with ${describe(index)} is not supported`, 'unsupported');
    return obj.items[index.value] ?? UNDEFINED;
  }

  // ---------------------------------------------------------------- calls

  private call(e: A.CallExpression, scope: Scope, frame: Frame): SValue {
    const callee = sequenceCallee(e.callee as A.Expression) ?? (e.callee as A.Expression);
    const args = () => e.arguments.map((a) => this.expr(a as A.Expression, scope, frame));
    if (callee.type === 'Identifier') {
      const b = scope.lookup(callee.name);
      if (b) {
        const f = this.read(b, frame, callee);
        if (f.kind === 'function') return this.inline(f.script, args(), e, frame);
        throw this.fail(callee, `'${callee.name}' is not a function (it is ${describe(f)})`);
      }
      return this.callOp(callee.name, callee.name, args(), e, frame);
    }
    if (callee.type === 'MemberExpression' && !callee.computed) {
      const prop = (callee.property as A.Identifier).name;
      const object = callee.object as A.Expression;
      if (object.type === 'Identifier' && !scope.lookup(object.name)) {
        const full = `${object.name}.${prop}`;
        if (object.name === 'Math') return this.math(prop, args(), e, frame);
        if (NOT_NAMESPACES.has(object.name)) {
          throw this.fail(
            callee,
            `'${full}' is not supported: a script calls kiln ops, tensor methods, Math functions and scripted functions`,
            'unsupported',
          );
        }
        return this.callOp(prop, OP_FUNCTIONS.has(prop) ? prop : full, args(), e, frame);
      }
      const receiver = this.expr(object, scope, frame);
      if (receiver.kind === 'tensor' && !receiver.scalar) {
        if (prop === 'item') {
          if (e.arguments.length > 0) throw this.fail(e, '.item() takes no arguments');
          return this.item(receiver.tensor, e, frame);
        }
        if (!OP_FUNCTIONS.has(prop))
          throw this.fail(
            callee.property,
            `the tensor method '.${prop}()' is not supported in a script`,
            'unsupported',
          );
        return this.callOp(prop, `.${prop}`, [receiver, ...args()], e, frame);
      }
      if (receiver.kind === 'tensor') {
        throw this.fail(
          callee.property,
          `'.${prop}()' is a tensor method, but this is a ${receiver.tensor.dtype === 'bool' ? 'boolean' : 'number'} in JavaScript (a value read with .item(), or a loop counter)`,
        );
      }
      throw this.fail(
        callee.property,
        `'.${prop}()' on ${describe(receiver)} is not supported`,
        'unsupported',
      );
    }
    throw this.fail(callee, 'only named functions and methods can be called in a script', 'unsupported');
  }

  /** `t.item()`: in JavaScript a number; here the same tensor as a scalar, standing for it. */
  private item(t: SymbolicTensor, e: A.Node, frame: Frame): SValue {
    const x = frame.use(t);
    if (x.shape.length === 0) return tensorValue(x, true);
    return tensorValue(
      this.ctx(frame, e).emit(() => api.reshape(x, [])),
      true,
    );
  }

  /** Calls op `name` of the functional API; `shown` is how the call was spelled, for messages. */
  callOp(name: string, shown: string, args: readonly SValue[], e: A.CallExpression, frame: Frame): SValue {
    const unscriptable = UNSCRIPTABLE[name];
    if (unscriptable) throw this.fail(e.callee, unscriptable, 'unsupported');
    const fn = OP_FUNCTIONS.get(name);
    if (!fn) {
      throw this.fail(
        e.callee,
        `unknown function '${shown}': a script calls kiln ops (add, matmul, sum, ...), tensor methods, Math functions and scripted functions passed in captures`,
      );
    }
    // In JavaScript a value read with .item() is a number, which the op API turns into a constant
    // of the first tensor argument's dtype (for `where`, of the first branch that is a tensor, else
    // float32); a scalar tensor standing for one is cast the same way.
    if (!findTensor(args) && args.some((a) => a.kind === 'tensor')) {
      throw this.fail(
        e,
        `'${shown}' needs a tensor argument: values read with .item() and loop counters are numbers in JavaScript`,
      );
    }
    const numberDType =
      name === 'where'
        ? (findTensor(args.slice(1))?.dtype ?? 'float32')
        : (findTensor(args)?.dtype ?? 'float32');
    const toJs = (v: SValue, inOptions: boolean, inArray: boolean): unknown => {
      switch (v.kind) {
        case 'tensor': {
          if (inOptions)
            throw this.fail(
              e,
              `the options of '${shown}' must be known when the script is lowered, not tensors`,
            );
          if (v.scalar && inArray) {
            throw this.fail(
              e,
              `a value read from a tensor cannot be a shape, axis or other list entry of '${shown}': those must be known when the script is lowered`,
            );
          }
          const t = frame.use(v.tensor);
          if (!v.scalar || t.dtype === 'bool' || t.dtype === numberDType) return t;
          return this.ctx(frame, e).emit(() => api.cast(t, numberDType));
        }
        case 'number':
        case 'boolean':
        case 'string':
          return v.value;
        case 'null':
          return null;
        case 'undefined':
          return undefined;
        case 'array':
          return v.items.map((x) => toJs(x, inOptions, true));
        case 'object':
          return Object.fromEntries([...v.entries].map(([k, x]) => [k, toJs(x, true, false)]));
        default:
          throw this.fail(e, `${describe(v)} cannot be passed to '${shown}'`);
      }
    };
    const jsArgs = args.map((a) => toJs(a, false, false));
    const result = this.ctx(frame, e).emit(() => fn(...jsArgs));
    if (result instanceof SymbolicTensor) return tensorValue(result);
    if (Array.isArray(result) && result.every((r) => r instanceof SymbolicTensor))
      return { kind: 'array', items: result.map((r) => tensorValue(r)) };
    throw this.fail(e, `'${shown}' did not return a tensor`, 'runtime');
  }

  private math(name: string, args: readonly SValue[], e: A.CallExpression, frame: Frame): SValue {
    if (name === 'random')
      throw this.fail(
        e.callee,
        "'Math.random' is not supported: its value would be fixed when the script is lowered; use randomUniform outside and capture it",
        'unsupported',
      );
    const fn = MATH_FUNCTIONS.get(name);
    if (!fn) throw this.fail(e.callee, `'Math.${name}' is not supported`, 'unsupported');
    if (args.every((a) => a.kind === 'number'))
      return num(fn(...args.map((a) => (a as { value: number }).value)));
    const ctx = this.ctx(frame, e);
    const op = MATH_OPS.get(name);
    for (const a of args) {
      if (a.kind === 'tensor' && !a.scalar)
        throw this.fail(
          e,
          `'Math.${name}' on a tensor is not supported${op ? `; use ${op}(x)` : ''}`,
          'unsupported',
        );
      if (!isScalarLike(a) || a.kind === 'boolean' || (a.kind === 'tensor' && a.tensor.dtype === 'bool'))
        throw this.fail(e, `'Math.${name}' needs numbers, got ${describe(a)}`);
    }
    if (!op)
      throw this.fail(
        e.callee,
        `'Math.${name}' on a number read from a tensor is not supported`,
        'unsupported',
      );
    const binaryOp = op === 'maximum' || op === 'minimum' || op === 'pow';
    if (args.length !== (binaryOp ? 2 : 1))
      throw this.fail(e, `'Math.${name}' takes ${binaryOp ? 2 : 1} arguments here`);
    const float =
      op !== 'abs' &&
      op !== 'maximum' &&
      op !== 'minimum' &&
      op !== 'sign' &&
      op !== 'floor' &&
      op !== 'ceil';
    const wantsFloat =
      float ||
      args.some(
        (a) =>
          (a.kind === 'tensor' && a.tensor.dtype === 'float32') ||
          (a.kind === 'number' && !Number.isInteger(a.value)),
      );
    const dtype = wantsFloat ? 'float32' : 'int32';
    const ts = args.map((a) => asTensor(ctx, a, dtype));
    const f = OP_FUNCTIONS.get(op)!;
    return tensorValue(
      ctx.emit(() => f(...ts) as SymbolicTensor),
      true,
    );
  }

  /** A call of a scripted function: its body is lowered here, with its parameters bound to `args`. */
  private inline(script: ParsedScript, args: readonly SValue[], e: A.CallExpression, frame: Frame): SValue {
    if (args.length !== script.params.length) {
      throw this.fail(e, `'${script.name}' takes ${script.params.length} arguments, got ${args.length}`);
    }
    if (this.session.depth >= MAX_CALL_DEPTH)
      throw this.fail(
        e,
        `scripted functions call each other more than ${MAX_CALL_DEPTH} deep (recursion is not supported)`,
        'unsupported',
      );
    this.session.depth++;
    try {
      return new FunctionLowering(this.session, script).run(args, frame).value;
    } catch (err) {
      // The error is located in the callee; say where it was called from, once per call level.
      if (err instanceof ScriptError) {
        const { line, column } = this.source.locate(e.start);
        const caller = this.source.name ? ` of '${this.source.name}'` : '';
        throw new ScriptError(
          err.code,
          `${err.message}\n  called from line ${line}, column ${column}${caller}`,
          err.line,
          err.column,
          { cause: err },
        );
      }
      throw err;
    } finally {
      this.session.depth--;
    }
  }
}

/** The first tensor (not a value read from one) among call arguments, arrays included. */
function findTensor(args: readonly SValue[]): SymbolicTensor | undefined {
  for (const a of args) {
    if (a.kind === 'tensor' && !a.scalar) return a.tensor;
    if (a.kind === 'array') {
      const inner = findTensor(a.items);
      if (inner) return inner;
    }
  }
  return undefined;
}

/** Whether a capture looks like a tensor: a dtype and a shape. */
export function isCapturedTensor(x: unknown): x is CapturedTensor {
  if (typeof x !== 'object' || x === null) return false;
  const t = x as Partial<CapturedTensor>;
  return isDType(t.dtype) && Array.isArray(t.shape);
}
