import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const dir = mkdtempSync(join(ROOT, '.user-files-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The first TypeScript sample under a README heading. */
function sample(heading: string): string {
  const section = README.slice(README.indexOf(`\n## ${heading}\n`));
  const block = /```ts\n([\s\S]*?)```/.exec(section);
  if (!block) throw new Error(`no sample under '${heading}'`);
  return block[1]!;
}

/**
 * What each `console.log(...); // shown` line of a sample says it prints, as a pattern: the
 * comment's text, where `…`, `...` and `[...]` stand for anything.
 */
function promised(code: string): RegExp[] {
  return [...code.matchAll(/console\.log\(.*\);\s*\/\/\s*(.+)$/gm)].map(
    ([, shown]) =>
      new RegExp(
        shown!
          .trim()
          .split(/…|\.\.\./)
          .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/\s+/g, '\\s*'))
          .join('[\\s\\S]*?'),
      ),
  );
}

describe("the README's samples", () => {
  it.each(['The symbolic API', 'Eager tensors'])('"%s" prints what its comments say', async (heading) => {
    const code = sample(heading);
    const patterns = promised(code);
    expect(patterns.length).toBeGreaterThan(0);
    const file = join(dir, `${heading.replace(/\W+/g, '-')}.ts`);
    writeFileSync(file, code);
    const { stdout } = await run('npx', ['tsx', file], { cwd: dir, timeout: 60_000 });
    let rest = stdout;
    for (const pattern of patterns) {
      const found = pattern.exec(rest);
      expect(found, `printed:\n${stdout}\nexpected, in order: ${pattern}`).not.toBeNull();
      rest = rest.slice(found!.index + found![0].length);
    }
  });
});
