import { execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { KilnError } from 'kiln-tensor';
import { describe, expect, it } from 'vitest';
import { loadAndRun } from '../src/load-and-run.js';

const run = promisify(execFile);
const root = new URL('..', import.meta.url).pathname;

describe('examples/symbolic', () => {
  it('prints the same probabilities after loading the graph in a fresh process', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kiln-example-test-'));
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
    const dir = await mkdtemp(join(tmpdir(), 'kiln-example-test-'));
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
