import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

/**
 * The example as a user runs it: it starts `kiln coordinator` and two `kiln worker` processes on
 * 127.0.0.1, connects to the coordinator as a client, trains a few steps, and reports what it did.
 * The processes it started end with it.
 */
describe('examples/cluster', () => {
  it('trains MNIST data-parallel on two worker processes and reports placement, time and bytes', async () => {
    const main = new URL('../src/main.ts', import.meta.url).pathname;
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--conditions=@kiln/source', '--import', 'tsx', main, '--steps', '3'],
      { timeout: 180_000, killSignal: 'SIGKILL' },
    );
    expect(stdout).toMatch(
      /coordinator listening on ws:\/\/127\.0\.0\.1:\d+; starting 2 kiln worker processes/,
    );
    expect(stdout).toMatch(/workers ready: worker:0, worker:1/);
    expect(stdout).toMatch(
      /\d+ samples\/s, [\d.]+ ms per step, final loss [\d.]+, held-out accuracy [\d.]+%/,
    );
    expect(stdout).toMatch(/worker:0 stage 0: .*\n(.|\n)*worker:1 stage 0/);
    expect(stdout).toMatch(/worker:1 \(worker at 127\.0\.0\.1:\d+\): [\d.]+ MiB sent, [\d.]+ MiB received/);
  }, 200_000);
});
