import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
// A folder inside the checkout, as a user's project next to it would be: 'kiln-tensor' resolves
// through the workspace's node_modules, to the built package, with no flags.
const dir = mkdtempSync(join(ROOT, '.user-files-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const PROGRAM = `
import { Graph, Session, add, matmul, softmax, tensor } from 'kiln-tensor';
const eager = add(tensor([[1, 2], [3, 4]]), 1);
const g = new Graph();
const x = g.placeholder('float32', [null, 2], 'x');
const y = softmax(matmul(x, g.constant({ dtype: 'float32', shape: [2, 2], data: new Float32Array([1, 0, 0, 1]) })));
const out = await new Session(g).run(y, { x: [[0, 0]] });
console.log(JSON.stringify({ eager: Array.from(eager.dataSync()), session: Array.from(out.data) }));
`;

// tsx (esbuild) strips the types and puts this function on one line: fn.toString() is not the file.
const SCRIPTED = `import { script, tensor, type Tensor } from 'kiln-tensor';

// a comment that says try, to be skipped
function f(x: Tensor): Tensor {
  const values: number[] = [1, 2];
  try {
    return x;
  } catch {
    return x;
  }
}
script(f)(tensor([1, 2]));
`;

describe("a user's own file after the quick start's setup", () => {
  it('gets script() errors that quote its own line, though tsx reformatted the function', async () => {
    writeFileSync(join(dir, 'scripted.ts'), SCRIPTED);
    const failed = await run('npx', ['tsx', 'scripted.ts'], { cwd: dir, timeout: 60_000 }).catch(
      (e: { stderr: string }) => e,
    );
    expect((failed as { stderr: string }).stderr).toContain(
      "script 'f': scripted.ts:6:3: 'try' is not supported\n  6 | try {",
    );
  });

  it.each([
    ['node', 'first.mjs', [] as string[]],
    ['npx', 'first.ts', ['tsx']],
  ])('runs with %s %s and no extra flag', async (command, file, args) => {
    writeFileSync(join(dir, file), PROGRAM);
    const { stdout } = await run(command, [...args, file], { cwd: dir, timeout: 60_000 });
    expect(JSON.parse(stdout)).toEqual({ eager: [2, 3, 4, 5], session: [0.5, 0.5] });
  });
});
