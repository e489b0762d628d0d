import type {
  AnyNode,
  AssignmentExpression,
  Expression,
  Node,
  Pattern,
  Statement,
  UpdateExpression,
  VariableDeclaration,
} from 'acorn';
import { type FunctionNode, type ScriptSource, scriptError } from './source.js';

/**
 * The subset check: runs once, when a function is scripted, before any input type is known, so
 * that everything the lowering cannot express is reported at once with its place in the source.
 * The list of constructs and their messages is the one in README.md; each has a test.
 */

/** Assignment operators of the subset; the rest (logical, bitwise) are rejected by name. */
export const ASSIGNMENT_OPERATORS: ReadonlySet<string> = new Set(['=', '+=', '-=', '*=', '/=', '%=', '**=']);

const NESTED_FUNCTION =
  'nested functions are not supported; script the function on its own and pass it in captures';

const STATEMENT_MESSAGES: Readonly<Record<string, string>> = {
  DoWhileStatement: "'do ... while' is not supported; use while",
  ForInStatement: "'for ... in' is not supported",
  ForOfStatement: "'for ... of' is not supported; use a counted for loop",
  SwitchStatement: "'switch' is not supported; use if / else",
  TryStatement: "'try' is not supported",
  ThrowStatement: "'throw' is not supported",
  BreakStatement: "'break' is not supported; put the exit test in the loop condition",
  ContinueStatement: "'continue' is not supported; use if inside the loop",
  LabeledStatement: 'labels are not supported',
  FunctionDeclaration: NESTED_FUNCTION,
  ClassDeclaration: 'classes are not supported',
  WithStatement: "'with' is not supported",
  DebuggerStatement: "'debugger' is not supported",
};

const EXPRESSION_MESSAGES: Readonly<Record<string, string>> = {
  ThisExpression: "'this' is not supported",
  NewExpression: "'new' is not supported",
  AwaitExpression: "'await' is not supported",
  YieldExpression: "'yield' is not supported",
  TemplateLiteral: 'template literals are not supported',
  TaggedTemplateExpression: 'template literals are not supported',
  SpreadElement: "spread ('...') is not supported",
  ChainExpression: "optional chaining ('?.') is not supported",
  FunctionExpression: NESTED_FUNCTION,
  ArrowFunctionExpression: NESTED_FUNCTION,
  ClassExpression: 'classes are not supported',
  SequenceExpression: 'the comma operator is not supported',
  AssignmentExpression: 'assignment inside an expression is not supported; assign in a statement of its own',
  UpdateExpression: "'++' and '--' inside an expression are not supported; use them as statements",
  ImportExpression: "dynamic 'import()' is not supported",
  MetaProperty: "'new.target' and 'import.meta' are not supported",
  Super: "'super' is not supported",
  ObjectPattern: 'destructuring is not supported',
  ArrayPattern: 'destructuring is not supported',
};

const OPERATOR_MESSAGES: Readonly<Record<string, string>> = {
  in: "the 'in' operator is not supported",
  instanceof: "'instanceof' is not supported",
  typeof: "'typeof' is not supported",
  void: "'void' is not supported",
  delete: "'delete' is not supported",
  '??': "'??' is not supported",
};

/**
 * `(0, ns.add)(x, y)`: how bundlers and test runners call an imported function without a `this`.
 * The leading numbers have no effect, so the callee is the last expression.
 */
export function sequenceCallee(callee: Expression): Expression | undefined {
  if (callee.type !== 'SequenceExpression') return undefined;
  const exprs = callee.expressions;
  const last = exprs[exprs.length - 1];
  const pure = exprs.slice(0, -1).every((e) => e.type === 'Literal' && typeof e.value === 'number');
  return pure && last && (last.type === 'MemberExpression' || last.type === 'Identifier') ? last : undefined;
}

class SubsetChecker {
  constructor(private readonly source: ScriptSource) {}

  private fail(node: Node, message: string): never {
    throw scriptError(this.source, node, message);
  }

  fn(node: Node): void {
    if (node.type === 'ClassExpression') this.fail(node, 'classes are not supported');
    const fn = node as FunctionNode;
    if (fn.async) this.fail(fn, "'async' functions are not supported (nor is 'await')");
    if (fn.generator) this.fail(fn, "generator functions are not supported (nor is 'yield')");
    const names = new Set<string>();
    for (const p of fn.params) {
      this.param(p);
      const name = (p as { name: string }).name;
      if (names.has(name)) this.fail(p, `parameter '${name}' is declared twice`);
      names.add(name);
    }
    if (fn.body.type === 'BlockStatement') this.statements(fn.body.body, false);
    else this.expr(fn.body);
  }

  private param(p: Pattern): void {
    if (p.type === 'Identifier') {
      this.identifier(p);
      return;
    }
    if (p.type === 'AssignmentPattern') this.fail(p, 'default parameter values are not supported');
    if (p.type === 'RestElement') this.fail(p, "rest parameters ('...') are not supported");
    this.fail(p, 'destructuring is not supported');
  }

  private identifier(node: Node & { name: string }): void {
    if (node.name === 'arguments') this.fail(node, "'arguments' is not supported");
  }

  private statements(list: readonly Statement[], inLoop: boolean): void {
    for (const s of list) this.statement(s, inLoop);
  }

  private statement(s: Statement, inLoop: boolean): void {
    const message = STATEMENT_MESSAGES[s.type];
    if (message) this.fail(s, message);
    switch (s.type) {
      case 'EmptyStatement':
        return;
      case 'BlockStatement':
        this.statements(s.body, inLoop);
        return;
      case 'VariableDeclaration':
        this.declaration(s);
        return;
      case 'ExpressionStatement':
        if (s.directive !== undefined) return;
        this.effect(s.expression as Expression, 'an expression statement must be a call or an assignment');
        return;
      case 'IfStatement':
        this.expr(s.test);
        this.statement(s.consequent, inLoop);
        if (s.alternate) this.statement(s.alternate, inLoop);
        return;
      case 'WhileStatement':
        this.expr(s.test);
        this.statement(s.body, true);
        return;
      case 'ForStatement':
        if (s.init?.type === 'VariableDeclaration') {
          if (s.init.kind !== 'let' && s.init.kind !== 'var')
            this.fail(s.init, "a 'for' loop variable must be declared with let");
          this.declaration(s.init);
        } else if (s.init)
          this.effect(s.init, "a 'for' loop's first clause must declare or assign its variable");
        if (!s.test) this.fail(s, "a 'for' loop without a condition is not supported");
        this.expr(s.test);
        if (s.update)
          this.effect(s.update, "a 'for' loop's last clause must be an assignment or '++' / '--'");
        this.statement(s.body, true);
        return;
      case 'ReturnStatement':
        if (inLoop) this.fail(s, "'return' inside a loop is not supported");
        if (!s.argument)
          this.fail(s, "'return' without a value is not supported: a scripted function returns tensors");
        this.expr(s.argument);
        return;
      default:
        this.fail(s, `'${s.type}' is not supported`);
    }
  }

  private declaration(d: VariableDeclaration): void {
    if (d.kind === 'var') this.fail(d, "'var' is not supported; use let or const");
    if (d.kind !== 'let' && d.kind !== 'const') this.fail(d, `'${d.kind}' declarations are not supported`);
    for (const decl of d.declarations) {
      if (decl.id.type !== 'Identifier') this.fail(decl.id, 'destructuring is not supported');
      this.identifier(decl.id);
      if (!decl.init)
        this.fail(decl, `'${d.kind} ${decl.id.name}' without a value is not supported; give it a value`);
      this.expr(decl.init);
    }
  }

  /** A statement-level expression: a call, an assignment or an update. */
  private effect(e: Expression, message: string): void {
    if (e.type === 'AssignmentExpression') {
      this.assignment(e);
      return;
    }
    if (e.type === 'UpdateExpression') {
      this.update(e);
      return;
    }
    if (e.type === 'CallExpression') {
      this.expr(e);
      return;
    }
    // Name an unsupported construct inside it (`delete o.a;`, `x?.y;`) before the statement's form.
    this.expr(e);
    this.fail(e, message);
  }

  private assignment(e: AssignmentExpression): void {
    if (!ASSIGNMENT_OPERATORS.has(e.operator)) {
      const logical = e.operator === '&&=' || e.operator === '||=' || e.operator === '??=';
      this.fail(
        e,
        `${logical ? 'logical assignment' : 'the assignment operator'} '${e.operator}' is not supported`,
      );
    }
    if (e.left.type === 'MemberExpression') this.fail(e.left, 'assigning to a property is not supported');
    if (e.left.type !== 'Identifier') this.fail(e.left, 'destructuring is not supported');
    this.identifier(e.left);
    this.expr(e.right);
  }

  private update(e: UpdateExpression): void {
    if (e.argument.type !== 'Identifier') this.fail(e.argument, `'${e.operator}' applies to a variable only`);
    this.identifier(e.argument);
  }

  expr(e: Expression | AnyNode): void {
    const message = EXPRESSION_MESSAGES[e.type];
    if (message) this.fail(e, message);
    switch (e.type) {
      case 'Identifier':
        this.identifier(e);
        return;
      case 'Literal':
        if (e.regex) this.fail(e, 'regular expressions are not supported');
        if (e.bigint !== undefined) this.fail(e, 'BigInt literals are not supported');
        return;
      case 'ArrayExpression':
        for (const item of e.elements) {
          if (item === null) this.fail(e, 'array holes are not supported');
          this.expr(item);
        }
        return;
      case 'ObjectExpression':
        for (const p of e.properties) {
          if (p.type === 'SpreadElement') this.fail(p, EXPRESSION_MESSAGES.SpreadElement!);
          if (p.kind !== 'init' || p.method)
            this.fail(p, 'methods, getters and setters in object literals are not supported');
          if (p.computed) this.fail(p.key, 'computed property names are not supported');
          if (p.key.type !== 'Identifier' && !(p.key.type === 'Literal' && typeof p.key.value === 'string'))
            this.fail(p.key, 'object keys must be names or strings');
          this.expr(p.value);
        }
        return;
      case 'UnaryExpression': {
        const unsupported = OPERATOR_MESSAGES[e.operator];
        if (unsupported) this.fail(e, unsupported);
        this.expr(e.argument);
        return;
      }
      case 'BinaryExpression':
      case 'LogicalExpression': {
        const unsupported = OPERATOR_MESSAGES[e.operator];
        if (unsupported) this.fail(e, unsupported);
        if (e.left.type === 'PrivateIdentifier') this.fail(e.left, 'private names are not supported');
        this.expr(e.left);
        this.expr(e.right);
        return;
      }
      case 'ConditionalExpression':
        this.expr(e.test);
        this.expr(e.consequent);
        this.expr(e.alternate);
        return;
      case 'MemberExpression':
        if (e.optional) this.fail(e, EXPRESSION_MESSAGES.ChainExpression!);
        if (e.object.type === 'Super') this.fail(e.object, EXPRESSION_MESSAGES.Super!);
        if (e.property.type === 'PrivateIdentifier') this.fail(e.property, 'private names are not supported');
        this.expr(e.object);
        if (e.computed) this.expr(e.property);
        return;
      case 'CallExpression': {
        if (e.optional) this.fail(e, EXPRESSION_MESSAGES.ChainExpression!);
        if (e.callee.type === 'Super') this.fail(e.callee, EXPRESSION_MESSAGES.Super!);
        this.expr(sequenceCallee(e.callee) ?? e.callee);
        for (const a of e.arguments) this.expr(a);
        return;
      }
      default:
        this.fail(e, `'${e.type}' is not supported`);
    }
  }
}

/** Throws a ScriptError (code 'unsupported') at the first construct outside the subset. */
export function checkSubset(source: ScriptSource, fn: Node): void {
  new SubsetChecker(source).fn(fn);
}
