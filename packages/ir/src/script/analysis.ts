import type { Expression, Identifier, Node, Statement } from 'acorn';

/**
 * Syntactic facts the lowering needs before it lowers a statement: which variables of the
 * enclosing scopes a loop assigns (they become its carried values), and whether a statement can
 * return (then the rest of its block becomes part of its branches). Both are over the subset, in
 * which assignments appear only as statements and in a for loop's clauses.
 */

/** Names declared with let/const directly in a statement list (block scoping, hoisted). */
export function declaredNames(statements: readonly Statement[]): string[] {
  const names: string[] = [];
  for (const s of statements) {
    if (s.type !== 'VariableDeclaration') continue;
    for (const d of s.declarations) names.push((d.id as Identifier).name);
  }
  return names;
}

/** The target of an assignment or update expression, if `e` is one. */
export function assignmentTarget(e: Expression | null | undefined): Identifier | undefined {
  if (e?.type === 'AssignmentExpression') return e.left as Identifier;
  if (e?.type === 'UpdateExpression') return e.argument as Identifier;
  return undefined;
}

/**
 * The variables that `nodes` (statements and for-loop clauses) assign and do not declare
 * themselves, in first-assignment order: each is a variable of an enclosing scope.
 */
export function assignedOuterNames(
  nodes: readonly (Statement | Expression | null | undefined)[],
): Identifier[] {
  const out: Identifier[] = [];
  const seen = new Set<string>();
  const scopes: Set<string>[] = [];
  const local = (name: string) => scopes.some((s) => s.has(name));
  const record = (target: Identifier | undefined) => {
    if (!target || local(target.name) || seen.has(target.name)) return;
    seen.add(target.name);
    out.push(target);
  };
  const block = (statements: readonly Statement[]) => {
    scopes.push(new Set(declaredNames(statements)));
    for (const s of statements) visit(s);
    scopes.pop();
  };
  const visit = (node: Statement | Expression | null | undefined): void => {
    if (!node) return;
    switch (node.type) {
      case 'BlockStatement':
        block(node.body);
        return;
      case 'ExpressionStatement':
        record(assignmentTarget(node.expression as Expression));
        return;
      case 'AssignmentExpression':
      case 'UpdateExpression':
        record(assignmentTarget(node));
        return;
      case 'IfStatement':
        // A single statement (not a block) cannot declare: `if (c) let x = 1` is a syntax error.
        visit(node.consequent);
        visit(node.alternate);
        return;
      case 'WhileStatement':
        visit(node.body);
        return;
      case 'ForStatement': {
        const declares = node.init?.type === 'VariableDeclaration';
        scopes.push(new Set(declares ? declaredNames([node.init as Statement]) : []));
        if (!declares) visit(node.init as Expression | null | undefined);
        visit(node.update);
        visit(node.body);
        scopes.pop();
        return;
      }
      default:
        return;
    }
  };
  for (const n of nodes) visit(n);
  return out;
}

/** Whether a statement contains a return (the subset has none inside loops or nested functions). */
export function mayReturn(s: Statement): boolean {
  switch (s.type) {
    case 'ReturnStatement':
      return true;
    case 'BlockStatement':
      return s.body.some(mayReturn);
    case 'IfStatement':
      return mayReturn(s.consequent) || (s.alternate ? mayReturn(s.alternate) : false);
    default:
      return false;
  }
}

/** Every identifier an expression reads (for the static-bound test of counted loops). */
export function identifiersIn(e: Node | null | undefined, out: Set<string> = new Set()): Set<string> {
  if (!e) return out;
  if (e.type === 'Identifier') {
    out.add((e as Identifier).name);
    return out;
  }
  for (const [key, value] of Object.entries(e)) {
    if (key === 'property' && !(e as { computed?: boolean }).computed) continue;
    if (key === 'key') continue;
    if (Array.isArray(value)) for (const v of value) if (isNode(v)) identifiersIn(v, out);
    if (isNode(value)) identifiersIn(value, out);
  }
  return out;
}

const isNode = (x: unknown): x is Node =>
  typeof x === 'object' && x !== null && typeof (x as { type?: unknown }).type === 'string';
