import {
  type ArrowFunctionExpression,
  type Expression,
  type FunctionExpression,
  type Node,
  parse,
} from 'acorn';
import { invalidArgument, KilnError, type KilnErrorCode } from '../errors.js';
import { locateOriginal, type OriginalSource, originalOffset, type ScriptedFn } from './original-source.js';

/** The function forms `script` reads: `function f(a) {...}`, anonymous functions and arrows. */
export type FunctionNode = FunctionExpression | ArrowFunctionExpression;

/**
 * A function's source text (from `fn.toString()`) and where it sits in the string the parser saw
 * (the text is wrapped in parentheses, or in an object literal for method shorthand, so that every
 * form parses as an expression). Positions in errors are lines and columns of `text`, 1-based.
 */
export class ScriptSource {
  private readonly lineStarts: number[] = [0];

  constructor(
    readonly name: string,
    readonly text: string,
    /** Offset of `text` in the parsed string: node positions minus this are positions in `text`. */
    readonly offset: number,
    /** The author's file, when `text` was reformatted on the way (see original-source.ts). */
    readonly original: () => OriginalSource | undefined = () => undefined,
  ) {
    for (let i = 0; i < text.length; i++) if (text[i] === '\n') this.lineStarts.push(i + 1);
  }

  /** 1-based line and column of a parser position. */
  locate(position: number): { line: number; column: number } {
    const at = Math.max(0, Math.min(this.text.length, position - this.offset));
    let lo = 0;
    let hi = this.lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.lineStarts[mid]! <= at) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, column: at - this.lineStarts[lo]! + 1 };
  }

  lineText(line: number): string {
    const start = this.lineStarts[line - 1] ?? 0;
    const end = this.lineStarts[line] ?? this.text.length + 1;
    return this.text.slice(start, end - 1).replace(/\r$/, '');
  }
}

/** A KilnError raised by `script`: its message starts with the place in the source it is about. */
export class ScriptError extends KilnError {
  constructor(
    code: KilnErrorCode,
    message: string,
    readonly line: number,
    readonly column: number,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
  }
}

/**
 * `script 'f': line 4, column 5: 'do ... while' is not supported; use while`, followed by the line
 * of source and a caret under the column.
 */
export function scriptError(
  source: ScriptSource,
  at: number | Pick<Node, 'start'>,
  message: string,
  code: KilnErrorCode = 'unsupported',
  cause?: unknown,
): ScriptError {
  const position = typeof at === 'number' ? at : at.start;
  const original = source.original();
  const inFile = original && inOriginal(original, source.text, position - source.offset);
  const { line, column } = inFile ?? source.locate(position);
  const text = inFile ? inFile.text : source.lineText(line);
  const code0 = text.trimStart();
  const indent = text.length - code0.length;
  // Tabs stay tabs under the caret, so it lines up whatever the tab width.
  const pad = text.slice(indent, Math.max(indent, column - 1)).replace(/[^\t]/g, ' ');
  const gutter = String(line);
  const who = source.name ? ` '${source.name}'` : '';
  const where = inFile ? `${inFile.file}:${line}:${column}` : `line ${line}, column ${column}`;
  const full =
    `script${who}: ${where}: ${message}\n` +
    `  ${gutter} | ${code0}\n` +
    `  ${' '.repeat(gutter.length)} | ${pad}^`;
  return new ScriptError(code, full, line, column, cause === undefined ? undefined : { cause });
}

/** Line, column and line text in the author's file of a position in the reformatted text. */
function inOriginal(
  original: OriginalSource,
  transformed: string,
  position: number,
): { line: number; column: number; text: string; file: string } | undefined {
  const offset = originalOffset(original, transformed, Math.max(0, position));
  if (offset === undefined) return undefined;
  const lineStart = original.text.lastIndexOf('\n', offset - 1) + 1;
  const lineEnd = original.text.indexOf('\n', offset);
  const line = original.text.slice(0, offset).split('\n').length;
  const text = original.text.slice(lineStart, lineEnd < 0 ? undefined : lineEnd).replace(/\r$/, '');
  return { line, column: offset - lineStart + 1, text, file: original.file };
}

const PARSE_OPTIONS = { ecmaVersion: 'latest', sourceType: 'script' } as const;

/** Wrappers that make each function form an expression: `(function f() {})`, `({ m() {} })`. */
const WRAPPERS: readonly (readonly [string, string])[] = [
  ['(', '\n)'],
  ['({', '\n})'],
];

function unwrap(expression: Expression): Node | undefined {
  if (expression.type === 'FunctionExpression' || expression.type === 'ArrowFunctionExpression')
    return expression;
  if (expression.type === 'ClassExpression') return expression;
  if (expression.type === 'ObjectExpression' && expression.properties.length === 1) {
    const only = expression.properties[0]!;
    if (only.type === 'Property' && only.method) return only.value;
  }
  return undefined;
}

/** Reads and parses a function's source with acorn; the result still has to pass the subset check. */
export function parseFunctionSource(fn: unknown): { source: ScriptSource; node: Node } {
  if (typeof fn !== 'function') throw invalidArgument(`script: expected a function, got ${typeof fn}`);
  const name = typeof fn.name === 'string' ? fn.name : '';
  const text = Function.prototype.toString.call(fn);
  if (/\{\s*\[native code\]\s*\}\s*$/.test(text)) {
    throw invalidArgument(
      `script: cannot read the source of ${name ? `'${name}'` : 'this function'}: it is native or bound`,
    );
  }
  let first: unknown;
  for (const [before, after] of WRAPPERS) {
    try {
      const program = parse(`${before}${text}${after}`, PARSE_OPTIONS);
      const statement = program.body[0];
      if (program.body.length !== 1 || statement?.type !== 'ExpressionStatement') continue;
      const node = unwrap(statement.expression);
      if (node)
        return {
          source: new ScriptSource(name, text, before.length, locateOriginal(fn as ScriptedFn, text)),
          node,
        };
    } catch (e) {
      first ??= e;
    }
  }
  const source = new ScriptSource(name, text, WRAPPERS[0]![0].length, locateOriginal(fn as ScriptedFn, text));
  const pos = (first as { pos?: unknown } | undefined)?.pos;
  const reason = first instanceof Error ? first.message.replace(/ \(\d+:\d+\)$/, '') : 'not a function';
  throw scriptError(
    source,
    typeof pos === 'number' ? pos : source.offset,
    `cannot parse the function's source: ${reason}`,
    'invalid-argument',
    first,
  );
}
