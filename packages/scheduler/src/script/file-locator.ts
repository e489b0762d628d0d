// No node: imports: the scheduler runs in browsers too, where this installs nothing.
import { type OriginalSource, setSourceLocator, userLocation } from '@kiln/ir';

type ReadFile = (path: string, encoding: 'utf8') => string;

/** Node's readFileSync where there is one; undefined in a browser, where errors keep the runtime text. */
function fileReader(): ReadFile | undefined {
  const process = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const fs = process?.getBuiltinModule?.('node:fs') as { readFileSync?: ReadFile } | undefined;
  return fs?.readFileSync;
}

/**
 * Where `fn` begins in the author's file: its declaration by name (`function f`, `f =`, `f(` as
 * a method), else the `script(...)` call itself (an arrow written in place).
 */
function startOf(fn: { readonly name: string }, text: string, line: number, column: number): number {
  if (fn.name) {
    const name = fn.name.replace(/[$]/g, '\\$&');
    const declared = new RegExp(
      `function\\s*\\*?\\s*${name}\\b|\\b${name}\\s*[=:]\\s*(?:async\\s*)?(?:function\\b|\\()|^\\s*${name}\\s*\\(`,
      'm',
    ).exec(text);
    if (declared) return declared.index;
  }
  const lines = text.split('\n');
  return lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0) + column - 1;
}

/**
 * Lets script() errors quote the author's file when tsx or esbuild reformatted the function
 * (see OriginalSource in @kiln/ir): the file is the one `script` was called from, read only when
 * an error is formatted, and only used when it does not already hold the function's text verbatim.
 */
export function installFileLocator(): void {
  const read = fileReader();
  if (!read) return;
  setSourceLocator((fn, transformed, site): OriginalSource | undefined => {
    const at = userLocation(site)?.match(/^(.*):(\d+):(\d+)$/);
    if (!at) return undefined;
    const path = at[1]!.startsWith('file:') ? decodeURIComponent(new URL(at[1]!).pathname) : at[1]!;
    const text = read(path, 'utf8');
    if (text.includes(transformed)) return undefined;
    const cwd = `${(globalThis as { process?: { cwd(): string } }).process?.cwd() ?? ''}/`;
    const file = path.startsWith(cwd) ? path.slice(cwd.length) : path;
    return { file, text, start: startOf(fn, text, Number(at[2]), Number(at[3])) };
  });
}
