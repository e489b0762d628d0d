import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as elementwise from '../src/ops/elementwise.js';

/**
 * The parts of kiln's API that follow from the elementwise op definitions, written into marked
 * blocks of the files that hold them, as TensorFlow generates its op wrappers from its op
 * registry: the elementwise table, each op's function, its method on tensors, its entry in
 * OP_FUNCTIONS, and its name among kiln-tensor's exports. Adding an elementwise op is then its
 * definition in `src/ops/elementwise.ts` and `npm run generate -w packages/ir`; a block left stale
 * fails `packages/ir/test/op-api.test.ts`, and a missing function or method fails to compile.
 */
export interface Block {
  /** The file, from the repository root. */
  readonly file: string;
  /** The block's name, as in its markers: `// <generated NAME>` ... `// </generated NAME>`. */
  readonly name: string;
  readonly lines: readonly string[];
}

interface ElementwiseOp {
  /** The op's name, as in the op table. */
  readonly name: string;
  /** The definition's export in elementwise.ts. */
  readonly id: string;
  /** `unary` and `binary` ops take tensors only; the others (`where`, `cast`) are written by hand. */
  readonly form: 'unary' | 'binary' | 'other';
}

/** Names that shadow a global of the same name: their function says so to the linter. */
const SHADOWS = new Set(['isNaN']);

/** The elementwise op definitions, in the order elementwise.ts defines them. */
export function elementwiseOps(root: string): ElementwiseOp[] {
  const source = readFileSync(join(root, 'packages/ir/src/ops/elementwise.ts'), 'utf8');
  const ids = [...source.matchAll(/^export const (\w+)\b/gm)].map((m) => m[1]!);
  const exports = elementwise as Record<string, unknown>;
  return ids.flatMap((id) => {
    const def = exports[id] as
      | { name?: unknown; kind?: unknown; arity?: unknown; attrs?: object }
      | undefined;
    if (!def || typeof def.name !== 'string' || def.kind !== 'elementwise') return [];
    const plain = Object.keys(def.attrs ?? {}).length === 0;
    const form = plain && def.arity === 1 ? 'unary' : plain && def.arity === 2 ? 'binary' : 'other';
    return [{ name: def.name, id, form } as const];
  });
}

/** Every generated block, as its lines should read. */
export function opApiBlocks(root: string): Block[] {
  const ops = elementwiseOps(root);
  const of = (form: ElementwiseOp['form']) => ops.filter((o) => o.form === form);
  const fn = (o: ElementwiseOp) => [
    ...(SHADOWS.has(o.name)
      ? [
          `// biome-ignore lint/suspicious/noShadowRestrictedNames: the op's name, as in tf.${o.name}; import it qualified if that clashes.`,
        ]
      : []),
    `export const ${o.name} = ${o.form}('${o.name}');`,
  ];
  return [
    {
      file: 'packages/ir/src/ops/elementwise.ts',
      name: 'elementwise table',
      lines: ops.map((o) => `  ${o.name}: ${o.id},`),
    },
    {
      file: 'packages/ir/src/api/ops.ts',
      name: 'elementwise functions',
      lines: [...of('unary').flatMap(fn), '', ...of('binary').flatMap(fn)],
    },
    {
      file: 'packages/ir/src/api/methods.ts',
      name: 'elementwise methods',
      lines: [
        ...of('unary').flatMap((o) => [`  ${o.name}(): this {`, `    return k.${o.name}(this);`, '  }']),
        '',
        ...of('binary').flatMap((o) => [
          `  ${o.name}(other: Like<this>): this {`,
          `    return k.${o.name}<this>(this, other);`,
          '  }',
        ]),
      ],
    },
    {
      file: 'packages/ir/src/api/op-functions.ts',
      name: 'elementwise functions',
      lines: ops.map((o) => `  ${o.name}: k.${o.name},`),
    },
    {
      file: 'packages/kiln/src/elementwise-ops.ts',
      name: 'elementwise exports',
      lines: ['export {', ...ops.map((o) => `  ${o.name},`), "} from '@kiln/ir';"],
    },
  ];
}

const opening = (name: string) => `// <generated ${name}>`;
const closing = (name: string) => `// </generated ${name}>`;

/** The lines of a file between a block's markers; an error if the markers are missing. */
export function blockIn(text: string, block: Pick<Block, 'file' | 'name'>): { start: number; end: number } {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.trim() === opening(block.name));
  const end = lines.findIndex((l) => l.trim() === closing(block.name));
  if (start < 0 || end < start)
    throw new Error(`${block.file}: no block '${opening(block.name)}' ... '${closing(block.name)}'`);
  return { start, end };
}

/** `text` with the block's lines put between its markers. */
export function withBlock(text: string, block: Block): string {
  const lines = text.split('\n');
  const { start, end } = blockIn(text, block);
  return [...lines.slice(0, start + 1), ...block.lines, ...lines.slice(end)].join('\n');
}

/**
 * What a block holds, compared without layout: its lines trimmed, blank ones and comments
 * dropped, sorted (the formatter may wrap and order an export list its own way).
 */
export function blockContent(lines: readonly string[]): string[] {
  return lines
    .flatMap((l) => l.split(/(?<=,)\s+/))
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('//'))
    .sort();
}
