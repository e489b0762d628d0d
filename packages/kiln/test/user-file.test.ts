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

describe("a user's own file after the quick start's setup", () => {
  it.each([
    ['node', 'first.mjs', [] as string[]],
    ['npx', 'first.ts', ['tsx']],
  ])('runs with %s %s and no extra flag', async (command, file, args) => {
    writeFileSync(join(dir, file), PROGRAM);
    const { stdout } = await run(command, [...args, file], { cwd: dir, timeout: 60_000 });
    expect(JSON.parse(stdout)).toEqual({ eager: [2, 3, 4, 5], session: [0.5, 0.5] });
  });
});
