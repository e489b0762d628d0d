/**
 * Where a scripted function was written, when the text `fn.toString()` gives is not what its
 * author wrote: tsx and esbuild strip types and reformat (a whole function on one line), so a line
 * of that text means nothing to the author. The runtime that can read files (the scheduler, in
 * Node) installs a locator; errors then quote the author's file, line and column.
 */
export interface OriginalSource {
  /** The file, as errors name it. */
  readonly file: string;
  /** The file's text. */
  readonly text: string;
  /** Where the function's source begins in `text`. */
  readonly start: number;
}

/**
 * Finds the original of `fn`, whose runtime text is `transformed`; `site` was made when `script`
 * was called, so its stack leads to the author's file.
 */
export type SourceLocator = (fn: ScriptedFn, transformed: string, site: Error) => OriginalSource | undefined;

/** Any function `script` may be given. */
export type ScriptedFn = (...args: never[]) => unknown;

let locator: SourceLocator | undefined;

/** Installs (or, with undefined, removes) the locator `script` asks for a function's original. */
export function setSourceLocator(next: SourceLocator | undefined): void {
  locator = next;
}

/**
 * The original of `fn`, looked up only if an error asks (reading a file on every `script` call
 * would cost every program that never fails); the call site is captured now, while it is on the
 * stack.
 */
export function locateOriginal(fn: ScriptedFn, transformed: string): () => OriginalSource | undefined {
  const find = locator;
  if (!find) return () => undefined;
  const site = new Error();
  let found: OriginalSource | undefined | null = null;
  return () => {
    if (found === null) {
      try {
        found = find(fn, transformed, site);
      } catch {
        // A locator that fails leaves errors quoting the text the runtime gave: still an answer.
        found = undefined;
      }
    }
    return found;
  };
}

const TOKEN = /[A-Za-z_$][\w$]*|\S/y;
const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The text with comments blanked out (kept as spaces, so offsets stay put). */
function withoutComments(text: string): string {
  return text.replace(/\/\/[^\n]*|\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, ' '));
}

/**
 * The offset in the original file of the token at `position` of the transformed text: the same
 * token, counted the same number of times from the function's start. Reformatting keeps tokens and
 * their order (it drops types and whitespace), so the k-th `try` of one is the k-th of the other.
 */
export function originalOffset(
  original: OriginalSource,
  transformed: string,
  position: number,
): number | undefined {
  TOKEN.lastIndex = position;
  const token = TOKEN.exec(transformed)?.[0];
  if (!token) return undefined;
  const word = /^[A-Za-z_$]/.test(token);
  const pattern = new RegExp(word ? `(?<![\\w$])${escapeRegExp(token)}(?![\\w$])` : escapeRegExp(token), 'g');
  const before = (transformed.slice(0, position).match(pattern) ?? []).length;
  const body = withoutComments(original.text.slice(original.start));
  let match: RegExpExecArray | null = null;
  for (let i = 0; i <= before; i++) {
    match = pattern.exec(body);
    if (!match) return undefined;
  }
  return match ? original.start + match.index : undefined;
}
