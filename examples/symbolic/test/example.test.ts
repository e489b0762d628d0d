import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { KilnError } from 'kiln-tensor';
import { afterEach, describe, expect, it } from 'vitest';
import { loadAndRun } from '../src/load-and-run.js';

const run = promisify(execFile);
const root = new URL('..', import.meta.url).pathname;

/** A fresh folder for one test's files, removed after it whatever its outcome. */
const folders: string[] = [];
const freshFolder = async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kiln-example-test-'));
  folders.push(dir);
  return dir;
};
afterEach(async () => {
  await Promise.all(folders.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

describe('examples/symbolic', () => {
  it('prints the same probabilities after loading the graph in a fresh process', async () => {
    const dir = await freshFolder();
    const { stdout } = await run('npm', ['start', '--silent'], {
      cwd: root,
      env: { ...process.env, KILN_EXAMPLE_DIR: dir },
    });
    expect(stdout).toContain('Identical: the graph is portable.');
    // The saved file, loaded here, gives a softmax per row.
    const probs = await loadAndRun(join(dir, 'model.kiln'));
    expect(probs).toHaveLength(9);
    for (let r = 0; r < 3; r++)
      expect(probs.slice(r * 3, r * 3 + 3).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
  });

  it('rejects a corrupted graph file with an error naming the file', async () => {
    const dir = await freshFolder();
    await run('npm', ['start', '--silent'], { cwd: root, env: { ...process.env, KILN_EXAMPLE_DIR: dir } });
    const file = join(dir, 'model.kiln');
    const bytes = await readFile(file);
    bytes[bytes.length - 5]! ^= 0x10;
    await writeFile(file, bytes);
    const err = await loadAndRun(file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KilnError);
    expect((err as KilnError).message).toContain(file);
  });
});
