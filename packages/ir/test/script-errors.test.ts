import {
  add,
  cast,
  KilnError,
  type MatmulOptions,
  matmul,
  mul,
  parseScript,
  reshape,
  type ScriptableFunction,
  type ScriptOptions,
  scriptToGraph,
  sum,
  type TensorHandle,
  type TensorType,
  tanh,
} from '@kiln/ir';
import { describe, expect, it } from 'vitest';

/**
 * Every construct that script/README.md lists as unsupported, each with the message it gets: the
 * construct's name, `line N, column M` of the function's source, and the line itself quoted with
 * a caret. Positions are computed from the source the runtime hands `script` (fn.toString()),
 * which is what the user sees in the error.
 */
interface Tensor extends TensorHandle {
  item(): number;
  add(y: Tensor | number): Tensor;
  matmul(y: Tensor, options?: MatmulOptions): Tensor;
}

const f32 = (shape: number[]): TensorType => ({ dtype: 'float32', shape });

interface Located {
  readonly line: number;
  readonly column: number;
  /** The line, without its indentation (the quote in the message leaves it out too). */
  readonly text: string;
  readonly indent: number;
}

/**
 * Line and column (1-based) of `needle` in the function's source, `shift` characters on. The
 * source is what the runtime gives (the test runner rewrites imported calls to
 * `(0, module.name)(...)`), so call sites are found with `call(name)`.
 */
function located(fn: ScriptableFunction, needle: string | RegExp, shift = 0): Located {
  const source = fn.toString();
  const at = typeof needle === 'string' ? source.indexOf(needle) : source.search(needle);
  if (at < 0) throw new Error(`'${needle}' is not in ${source}`);
  const index = at + shift;
  const before = source.slice(0, index);
  const line = before.split('\n').length;
  const column = index - before.lastIndexOf('\n');
  const raw = source.split('\n')[line - 1]!;
  const text = raw.trimStart();
  return { line, column, text: text.trimEnd(), indent: raw.length - text.length };
}

/** Where a call of the imported function `name` starts, in either form. */
const call = (name: string) => new RegExp(`\\(0,\\s*[\\w$]+\\.${name}\\)\\(|\\b${name}\\(`);

/** The closing brace of the function. */
const END = /\}\s*$/;

function errorOf(f: () => unknown): KilnError {
  try {
    f();
  } catch (e) {
    if (!(e instanceof KilnError)) throw e;
    return e;
  }
  throw new Error('expected an error');
}

/** The error says what, where (line and column), and quotes the line with a caret under the column. */
function expectLocated(e: KilnError, where: Located, what: string): void {
  expect(e.message).toContain(`line ${where.line}, column ${where.column}: `);
  expect(e.message).toContain(what);
  const [first, quoted, caret] = e.message.split('\n');
  expect(first).toMatch(/^script( '[^']*')?: line \d+, column \d+: /);
  expect(quoted).toBe(`  ${where.line} | ${where.text}`);
  const gutter = `  ${' '.repeat(String(where.line).length)} | `;
  expect(caret!.startsWith(gutter)).toBe(true);
  expect(caret!.slice(gutter.length).length).toBe(where.column - where.indent);
  expect(caret!.endsWith('^')).toBe(true);
}

// ---------------------------------------------------------------- unsupported syntax

// Constructs TypeScript itself would reject are written with `new Function`, whose source the
// runtime also hands to script.
const sloppy = (...args: string[]) => new Function(...args) as ScriptableFunction;

const UNSUPPORTED: [
  construct: string,
  fn: ScriptableFunction,
  needle: string | RegExp,
  message: string,
  shift?: number,
][] = [
  [
    "'async' functions",
    async function f(x: Tensor) {
      return x;
    },
    'async',
    "'async' functions are not supported (nor is 'await')",
  ],
  [
    'generator functions',
    function* g(x: Tensor) {
      yield x;
    },
    'function*',
    "generator functions are not supported (nor is 'yield')",
  ],
  [
    'default parameter values',
    function f(x: Tensor, y = 1) {
      return add(x, y);
    },
    'y = 1',
    'default parameter values are not supported',
  ],
  [
    'rest parameters',
    function f(...xs: Tensor[]) {
      return xs;
    },
    '...xs',
    "rest parameters ('...') are not supported",
  ],
  [
    'destructuring parameters',
    function f({ x }: { x: Tensor }) {
      return x;
    },
    '{ x }',
    'destructuring is not supported',
  ],
  ['a parameter declared twice', sloppy('x', 'x', 'return x'), 'x,x', "parameter 'x' is declared twice", 2],
  [
    "'var'",
    function f(x: Tensor) {
      var y = x;
      return y;
    },
    'var y',
    "'var' is not supported; use let or const",
  ],
  [
    'a declaration without a value',
    function f(x: Tensor) {
      // biome-ignore lint/style/useConst: the construct under test.
      let y: Tensor;
      y = x;
      return y;
    },
    'let y;',
    "'let y' without a value is not supported; give it a value",
    4,
  ],
  [
    "'do ... while'",
    function f(x: Tensor) {
      let y = x;
      do {
        y = tanh(y);
      } while (sum(y).item() > 1);
      return y;
    },
    'do {',
    "'do ... while' is not supported; use while",
  ],
  [
    "'for ... in'",
    function f(x: Tensor) {
      for (const k in x) add(x, k.length);
      return x;
    },
    'for (const k in',
    "'for ... in' is not supported",
  ],
  [
    "'for ... of'",
    function f(x: Tensor) {
      let y = x;
      for (const k of [1, 2]) y = add(y, k);
      return y;
    },
    'for (const k of',
    "'for ... of' is not supported; use a counted for loop",
  ],
  [
    "'switch'",
    function f(x: Tensor, n: number) {
      switch (n) {
        case 1:
          return x;
      }
      return x;
    },
    'switch',
    "'switch' is not supported; use if / else",
  ],
  [
    "'try'",
    function f(x: Tensor) {
      try {
        return tanh(x);
      } catch {
        return x;
      }
    },
    'try',
    "'try' is not supported",
  ],
  [
    "'throw'",
    function f(x: Tensor) {
      if (x.shape.length > 2) throw new Error('rank');
      return x;
    },
    'throw',
    "'throw' is not supported",
  ],
  [
    "'break'",
    function f(x: Tensor) {
      let y = x;
      while (sum(y).item() > 1) {
        y = tanh(y);
        if (sum(y).item() < 0) break;
      }
      return y;
    },
    'break',
    "'break' is not supported; put the exit test in the loop condition",
  ],
  [
    "'continue'",
    function f(x: Tensor) {
      let y = x;
      for (let i = 0; i < 3; i++) {
        if (i === 1) continue;
        y = tanh(y);
      }
      return y;
    },
    'continue',
    "'continue' is not supported; use if inside the loop",
  ],
  [
    'labels',
    sloppy(
      'x',
      'let y = x;\nouter: for (let i = 0; i < 3; i++) {\n  y = tanh(y);\n  if (i > 1) break outer;\n}\nreturn y',
    ),
    'outer:',
    'labels are not supported',
  ],
  [
    'nested function declarations',
    function f(x: Tensor) {
      function g(y: Tensor) {
        return tanh(y);
      }
      return g(x);
    },
    'function g',
    'nested functions are not supported; script the function on its own and pass it in captures',
  ],
  [
    'nested arrow functions',
    function f(x: Tensor) {
      const g = (y: Tensor) => tanh(y);
      return g(x);
    },
    '(y) =>',
    'nested functions are not supported',
  ],
  [
    'nested function expressions',
    sloppy('x', 'const g = function (y) { return y; };\nreturn g(x)'),
    'function (y)',
    'nested functions are not supported',
  ],
  [
    'classes',
    function f(x: Tensor) {
      class Box {}
      return [x, Box];
    },
    'class Box',
    'classes are not supported',
  ],
  ["'with'", sloppy('x', 'with (x) { return x; }'), 'with', "'with' is not supported"],
  [
    "'debugger'",
    function f(x: Tensor) {
      // biome-ignore lint/suspicious/noDebugger: the construct under test.
      debugger;
      return x;
    },
    'debugger',
    "'debugger' is not supported",
  ],
  [
    "'return' without a value",
    function f(x: Tensor) {
      if (x.shape.length === 0) return;
      return x;
    },
    'return;',
    "'return' without a value is not supported",
  ],
  [
    "'return' inside a loop",
    function f(x: Tensor) {
      let y = x;
      while (sum(y).item() > 1) {
        y = tanh(y);
        if (sum(y).item() < 0) return y;
      }
      return y;
    },
    'return y;\n',
    "'return' inside a loop is not supported",
  ],
  [
    "a 'for' loop without a condition",
    function f(x: Tensor) {
      let y = x;
      for (;;) y = tanh(y);
    },
    'for (;;)',
    "a 'for' loop without a condition is not supported",
  ],
  [
    "a 'for' loop variable declared with const",
    function f(x: Tensor) {
      let y = x;
      for (const i = 0; i < 3; ) y = add(y, i);
      return y;
    },
    'const i',
    "a 'for' loop variable must be declared with let",
  ],
  [
    'an expression statement that is not a call or an assignment',
    sloppy('x', 'x;\nreturn x'),
    'x;',
    'an expression statement must be a call or an assignment',
  ],
  [
    "'this'",
    function f(this: unknown, x: Tensor) {
      return [x, this];
    },
    'this',
    "'this' is not supported",
  ],
  [
    "'new'",
    function f(x: Tensor) {
      return [x, new Float32Array(2)];
    },
    'new Float32Array',
    "'new' is not supported",
  ],
  [
    'template literals',
    function f(x: Tensor) {
      return cast(x, `int${32}` as 'int32');
    },
    '`int',
    'template literals are not supported',
  ],
  [
    'tagged templates',
    function f(x: Tensor) {
      return [x, String.raw`int\d`];
    },
    'String.raw',
    'template literals are not supported',
  ],
  [
    'array spread',
    function f(x: Tensor) {
      const xs = [x];
      return [...xs];
    },
    '...xs]',
    "spread ('...') is not supported",
  ],
  [
    'optional calls',
    function f(x: Tensor, g?: (t: Tensor) => Tensor) {
      return g?.(x);
    },
    'g?.(',
    "optional chaining ('?.') is not supported",
  ],
  [
    'spread',
    function f(x: Tensor) {
      const xs: [Tensor, Tensor] = [x, x];
      return add(...xs);
    },
    '...xs',
    "spread ('...') is not supported",
  ],
  [
    'object spread',
    function f(x: Tensor) {
      const o = { keepDims: true };
      return sum(x, 0, { ...o });
    },
    '...o',
    "spread ('...') is not supported",
  ],
  [
    'optional chaining',
    function f(x: Tensor) {
      return x?.add(1);
    },
    'x?.',
    "optional chaining ('?.') is not supported",
  ],
  [
    'class expressions',
    function f(x: Tensor) {
      const Box = class {};
      return [x, Box];
    },
    'class {',
    'classes are not supported',
  ],
  [
    'the comma operator',
    sloppy('x', 'const y = (x, x);\nreturn y'),
    '(x, x)',
    'the comma operator is not supported',
    1,
  ],
  [
    'assignment inside an expression',
    function f(x: Tensor) {
      let y = x;
      return add((y = x), y);
    },
    'y = x,',
    'assignment inside an expression is not supported; assign in a statement of its own',
  ],
  [
    "'++' inside an expression",
    function f(x: Tensor) {
      let i = 0;
      return add(x, i++);
    },
    'i++',
    "'++' and '--' inside an expression are not supported; use them as statements",
  ],
  [
    'dynamic import()',
    sloppy('x', "return import('kiln')"),
    'import(',
    "dynamic 'import()' is not supported",
  ],
  [
    "'new.target'",
    sloppy('x', 'return new.target'),
    'new.target',
    "'new.target' and 'import.meta' are not supported",
  ],
  [
    'destructuring declarations',
    function f(x: Tensor) {
      const [a, b] = [x, x];
      return add(a, b);
    },
    '[a, b]',
    'destructuring is not supported',
  ],
  [
    'destructuring assignments',
    sloppy('x', 'let a = x;\nlet b = x;\n[a, b] = [b, a];\nreturn a'),
    '[a, b] =',
    'destructuring is not supported',
  ],
  [
    'regular expressions',
    function f(x: Tensor) {
      return [x, /x/];
    },
    '/x/',
    'regular expressions are not supported',
  ],
  [
    'BigInt literals',
    function f(x: Tensor) {
      return [x, 1n];
    },
    '1n',
    'BigInt literals are not supported',
  ],
  [
    "the 'in' operator",
    function f(x: Tensor) {
      return 'shape' in x ? x : x;
    },
    /["']shape["'] in/,
    "the 'in' operator is not supported",
  ],
  [
    "'instanceof'",
    function f(x: Tensor) {
      return x instanceof Object ? x : x;
    },
    'x instanceof',
    "'instanceof' is not supported",
  ],
  [
    "'typeof'",
    function f(x: Tensor) {
      return typeof x === 'object' ? x : x;
    },
    'typeof',
    "'typeof' is not supported",
  ],
  ["'void'", sloppy('x', 'return void x'), 'void', "'void' is not supported"],
  [
    "'delete'",
    sloppy('x', 'const o = { a: x };\ndelete o.a;\nreturn x'),
    'delete',
    "'delete' is not supported",
  ],
  [
    "'??'",
    function f(x: Tensor, y: Tensor | null) {
      return y ?? x;
    },
    'y ??',
    "'??' is not supported",
  ],
  [
    'logical assignment',
    function f(x: Tensor, y: Tensor | null) {
      y ||= x;
      return y;
    },
    'y ||=',
    "logical assignment '||=' is not supported",
  ],
  [
    'bitwise assignment operators',
    function f(x: Tensor) {
      let n = 1;
      n |= 2;
      return add(x, n);
    },
    'n |=',
    "the assignment operator '|=' is not supported",
  ],
  [
    'assigning to a property',
    function f(x: Tensor) {
      const o = { a: x };
      o.a = tanh(x);
      return o.a;
    },
    'o.a =',
    'assigning to a property is not supported',
  ],
  ['array holes', sloppy('x', 'const a = [1, , 2];\nreturn x'), '[1, , 2]', 'array holes are not supported'],
  [
    'getters and methods in object literals',
    function f(x: Tensor) {
      return sum(x, 0, {
        get keepDims() {
          return true;
        },
      });
    },
    'get keepDims',
    'methods, getters and setters in object literals are not supported',
  ],
  [
    'computed property names',
    function f(x: Tensor) {
      const key = 'keepDims';
      return sum(x, 0, { [key]: true });
    },
    'key]',
    'computed property names are not supported',
  ],
  [
    "'arguments'",
    function f(x: Tensor) {
      // biome-ignore lint/complexity/noArguments: the construct under test.
      return [x, arguments[0]];
    },
    'arguments',
    "'arguments' is not supported",
  ],
];

describe('script: constructs outside the subset', () => {
  it.each(UNSUPPORTED)('rejects %s when the function is scripted', (_, fn, needle, message, shift) => {
    const where = located(fn, needle, shift ?? 0);
    const e = errorOf(() => parseScript(fn));
    expect(e.code).toBe('unsupported');
    expectLocated(e, where, message);
  });

  it('rejects what is not a function with readable source', () => {
    const e = errorOf(() => parseScript({ toString: () => 'x' } as unknown as ScriptableFunction));
    expect(e.message).toMatch(/expected a function/);
    const bound = tanh.bind(null);
    expect(errorOf(() => parseScript(bound)).message).toMatch(/native or bound/);
    expect(errorOf(() => parseScript(Math.max)).message).toMatch(/native or bound/);
    class Layer {}
    const c = errorOf(() => parseScript(Layer as unknown as ScriptableFunction));
    expect(c.code).toBe('unsupported');
    expect(c.message).toMatch(/line 1, column 1: classes are not supported/);
  });
});

// ---------------------------------------------------------------- errors found while lowering

function lowerError(
  fn: ScriptableFunction,
  types: readonly TensorType[],
  options: ScriptOptions = {},
): KilnError {
  return errorOf(() => scriptToGraph(fn, types, options));
}

describe('script: errors found while lowering', () => {
  it('locates type errors of ops (matmul with a number)', () => {
    const fn = function f(x: Tensor) {
      const h = tanh(x);
      return matmul(h, 2 as unknown as Tensor);
    };
    const e = lowerError(fn, [f32([2, 3])]);
    expect(e.code).toBe('shape');
    expectLocated(e, located(fn, call('matmul')), 'matmul');
  });

  it('rejects arithmetic operators on tensors, suggesting the op', () => {
    const fn = function f(x: Tensor, y: Tensor) {
      return (x as unknown as number) + (y as unknown as number);
    };
    const e = lowerError(fn, [f32([2]), f32([2])]);
    expect(e.code).toBe('unsupported');
    expectLocated(e, located(fn, 'x + y'), "'+' on a tensor is not supported");
    expect(e.message).toContain('use add(a, b)');
  });

  it('rejects a tensor used as a condition: JavaScript takes any object for true', () => {
    const fn = function f(x: Tensor) {
      if (x) return tanh(x);
      return x;
    };
    const e = lowerError(fn, [f32([2])]);
    expectLocated(e, located(fn, 'if (x)', 4), 'always takes for true; read its value with .item()');
  });

  it('rejects branches that leave a variable with different dtypes', () => {
    const fn = function f(x: Tensor) {
      let h = x;
      if (sum(x).item() > 0) {
        h = cast(x, 'int32');
      }
      return h;
    };
    const e = lowerError(fn, [f32([3])]);
    expectLocated(
      e,
      located(fn, 'if ('),
      "variable 'h' is a tensor i32[3] after the then branch but a tensor f32[3] after the else branch (their dtypes differ)",
    );
  });

  it('rejects a loop that changes the rank of a carried value', () => {
    const fn = function f(x: Tensor) {
      let h = x;
      while (sum(h).item() > 1) {
        h = sum(h);
      }
      return h;
    };
    const e = lowerError(fn, [f32([3])]);
    expectLocated(
      e,
      located(fn, 'while'),
      "'h' enters the loop as f32[3] but an iteration leaves it a tensor f32[]",
    );
  });

  it('rejects a loop whose condition cannot change', () => {
    const fn = function f(x: Tensor) {
      let h = x;
      // biome-ignore lint/correctness/noConstantCondition: the error under test.
      while (1 < 2) {
        h = tanh(h);
      }
      return h;
    };
    expectLocated(
      lowerError(fn, [f32([3])]),
      located(fn, '1 < 2'),
      'always true, so the loop would never end',
    );
  });

  it.each([
    [
      'assignment to a const',
      function f(x: Tensor) {
        const y = x;
        // @ts-expect-error: the error under test.
        // biome-ignore lint/correctness/noConstAssign: the error under test.
        y = tanh(x);
        return y;
      },
      'y = (',
      "'y' is a const and cannot be assigned",
    ],
    [
      'a name the script cannot see',
      function f(x: Tensor) {
        return add(x, SECRET);
      },
      'SECRET',
      "'SECRET' is not defined in the script",
    ],
    [
      'an unknown function',
      function f(x: Tensor) {
        return frobnicate(x);
      },
      'frobnicate',
      "unknown function 'frobnicate'",
    ],
    [
      'a call of a global that is not an op',
      function f(x: Tensor) {
        console.log(x);
        return x;
      },
      'console.log',
      "'console.log' is not supported",
    ],
    [
      'Math.random',
      function f(x: Tensor) {
        return add(x, Math.random());
      },
      'Math.random',
      "'Math.random' is not supported",
    ],
    [
      'a tensor method script does not know',
      function f(x: Tensor) {
        return (x as unknown as { frob(): Tensor }).frob();
      },
      'frob()',
      "the tensor method '.frob()' is not supported",
    ],
    [
      'a tensor method on a number read from a tensor',
      function f(x: Tensor) {
        const n = sum(x).item() as unknown as Tensor;
        return n.add(1);
      },
      'add(1)',
      "'.add()' is a tensor method, but this is a number in JavaScript",
    ],
    [
      "'%' on a number read from a tensor",
      function f(x: Tensor) {
        return add(x, sum(x).item() % 2);
      },
      call('sum'),
      "'%' on a number read from a tensor is not supported",
    ],
    [
      'a value read from a tensor used as a shape',
      function f(x: Tensor) {
        return reshape(x, [sum(x).item()]);
      },
      call('reshape'),
      "a value read from a tensor cannot be a shape, axis or other list entry of 'reshape'",
    ],
    [
      'options that are tensors',
      function f(x: Tensor) {
        return sum(x, 0, { keepDims: x as unknown as boolean });
      },
      call('sum'),
      'must be known when the script is lowered',
    ],
    [
      'a function that can end without returning',
      function f(x: Tensor) {
        if (x.shape[0] === 3) return x;
      },
      END,
      'the function can reach its end without returning',
    ],
  ] as [string, ScriptableFunction, string | RegExp, string][])('rejects %s', (_, fn, needle, message) => {
    expectLocated(lowerError(fn, [f32([2])]), located(fn, needle), message);
  });

  it('rejects an if that returns on one path while another reaches the end', () => {
    const fn = function f(x: Tensor) {
      let y = x;
      if (sum(x).item() > 0) {
        return tanh(x);
      }
      y = mul(y, 2);
    };
    expectLocated(lowerError(fn, [f32([2])]), located(fn, 'if ('), "this 'if' returns on some paths");
  });

  it('says where a scripted callee failed and where it was called from', () => {
    const inner = function inner(x: Tensor) {
      return matmul(x, x);
    };
    const outer = function outer(x: Tensor) {
      const y = tanh(x);
      return inner(y);
    };
    const e = lowerError(outer, [f32([2, 3])], { captures: { inner } });
    expectLocated(e, located(inner, call('matmul')), 'contracted dimensions differ');
    const site = located(outer, 'inner(y)');
    expect(e.message).toContain(`called from line ${site.line}, column ${site.column} of 'outer'`);
  });

  it('checks the number of input types and of arguments to scripted functions', () => {
    expect(lowerError((x: Tensor) => x, []).message).toMatch(/takes 1 inputs \(x\), got 0 input types/);
    const outer = function outer(x: Tensor) {
      return (inner as (a: Tensor, b: Tensor) => Tensor)(x, x);
    };
    const e = lowerError(outer, [f32([2])], { captures: { inner: (x: Tensor) => x } });
    expect(e.message).toMatch(/takes 1 arguments, got 2/);
  });

  it('rejects captures that are not values a script can use', () => {
    expect(
      errorOf(() => parseScript((x: Tensor) => x, { captures: { s: 'text' as never } })).message,
    ).toMatch(/capture 's' is string/);
  });
});

declare const SECRET: number;
declare function frobnicate(x: Tensor): Tensor;
declare const inner: (x: Tensor) => Tensor;
