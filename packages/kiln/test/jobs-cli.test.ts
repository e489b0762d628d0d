import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { add, Graph, HostTensor, matmul, mean, Prng, saveGraphFile, square, sub, tensor } from 'kiln-tensor';
import { writeSafetensors } from 'kiln-tensor/jobs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { killAll, runKiln, runKilnOnTerminal, startCoordinator, startWorker } from './worker-processes.js';

/**
 * The job commands against a real `kiln coordinator` with two `kiln worker` processes: submit a
 * job file and follow it, list, status, logs, cancel; exit codes say how jobs ended; and a
 * coordinator killed with SIGKILL comes back with every job it had.
 */
const TOKEN = 'jobs-cli-test';
let dir: string;

/** Linear regression on exactly linear data: the job file, its graph file and its dataset. */
async function jobFiles(): Promise<void> {
  const g = new Graph();
  const x = g.placeholder('float32', [null, 4], 'x');
  const y = g.placeholder('float32', [null, 1], 'y');
  const w = g.variable('w', tensor(g, [0, 0, 0, 0], [4, 1]));
  const b = g.variable('b', tensor(g, [0], [1]));
  g.output('loss', mean(square(sub(add(matmul(x, w), b), y))));
  await saveGraphFile(join(dir, 'regression.kgraph'), g);
  const rng = new Prng(5);
  const rows = 512;
  const xs = Float32Array.from({ length: rows * 4 }, () => rng.normal());
  const ys = Float32Array.from(
    { length: rows },
    (_, r) => 0.5 + xs[r * 4]! - 2 * xs[r * 4 + 1]! + xs[r * 4 + 3]!,
  );
  writeSafetensors(join(dir, 'train.safetensors'), {
    x: new HostTensor('float32', [rows, 4], xs),
    y: new HostTensor('float32', [rows, 1], ys),
  });
  const spec = (name: string, loop: object, extra: object = {}) => ({
    name,
    graph: 'regression.kgraph',
    loss: 'loss',
    optimizer: { kind: 'sgd', learningRate: 0.05 },
    dataset: { files: ['train.safetensors'], feeds: { x: 'x', y: 'y' } },
    loop,
    ...extra,
  });
  await writeFile(
    join(dir, 'quick.json'),
    JSON.stringify(
      spec('quick', { epochs: 2, batchSize: 32, seed: 1 }, { checkpoint: { every: 100, dir: 'ckpt' } }),
    ),
  );
  await writeFile(
    join(dir, 'long.json'),
    JSON.stringify(spec('long', { steps: 1_000_000, batchSize: 32, seed: 1 })),
  );
  await writeFile(join(dir, 'bad.json'), JSON.stringify(spec('bad', { steps: 0, batchSize: 32, seed: 1 })));
}

async function coordinator(store: string) {
  const c = startCoordinator(TOKEN, ['--workers', '2', '--store', store]);
  const url = await c.listening;
  for (let i = 0; i < 2; i++) startWorker(url, TOKEN);
  await c.ready;
  return { c, url };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kiln-jobs-cli-'));
  await jobFiles();
});
afterEach(() => killAll());
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('kiln submit, jobs, status, logs, cancel', () => {
  it('runs a job file to the end and reports it; exit codes follow the job', async () => {
    const { url } = await coordinator(join(dir, 'a.sqlite'));
    const env = { KILN_COORDINATOR: url, KILN_TOKEN: TOKEN };
    const run = await runKiln(['submit', join(dir, 'quick.json'), '--follow'], env);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const out = run.stdout.split('\n');
    // Workers are free: it starts as it is submitted.
    expect(out[0]).toBe('job 1 RUNNING on worker:0');
    expect(out).toContainEqual(expect.stringMatching(/^\d\d:\d\d:\d\d RUNNING on worker:0$/));
    // Piped, progress is plain lines: step, loss, speed and ETA.
    expect(out).toContainEqual(
      expect.stringMatching(/^step 32\/32 {2}epoch 1 {2}loss \d+\.\d{4} {2}\d+ samples\/s {2}ETA 0s$/),
    );
    expect(out).toContainEqual(expect.stringMatching(/checkpoint at step 32: .*job-1\.ckpt$/));
    expect(out.filter(Boolean).at(-1)).toMatch(/SUCCEEDED$/);

    const list = await runKiln(['jobs'], env);
    expect(list.stdout).toMatch(
      /^ID\s+STATE\s+NAME\s+WORKERS\s+PROGRESS\s+SUBMITTED\n1\s+SUCCEEDED\s+quick\s+worker:0\s+32\/32 loss/,
    );
    const status = await runKiln(['status', '1', '--json'], env);
    expect(JSON.parse(status.stdout)).toMatchObject({ id: '1', state: 'SUCCEEDED', result: { steps: 32 } });

    const bad = await runKiln(['submit', join(dir, 'bad.json')], env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('loop.steps: must be an integer >= 1; got 0');

    const long = await runKiln(['submit', join(dir, 'long.json')], env);
    expect(long.stdout).toBe('job 2 RUNNING on worker:0\n');
    const followed = runKiln(['logs', '2', '--follow'], env);
    // Let it run a little, then stop it from another process.
    await new Promise((r) => setTimeout(r, 1500));
    const cancel = await runKiln(['cancel', '2'], env);
    expect(cancel.stdout).toMatch(/^job 2 RUNNING\n$/);
    const ended = await followed;
    expect(ended.code).toBe(3);
    expect(ended.stdout).toMatch(/cancel requested/);
    expect(ended.stdout.trimEnd()).toMatch(/STOPPED: cancelled after step \d+$/);
    const logs = await runKiln(['logs', '2'], env);
    expect(logs.stdout.trimEnd().split('\n').at(-1)).toMatch(/STOPPED: cancelled after step \d+$/);
    expect((await runKiln(['status', '2'], env)).code).toBe(3);

    const unknown = await runKiln(['status', '99'], env);
    expect(unknown).toMatchObject({ code: 1, stderr: "kiln: no job '99'\n" });
    const noToken = await runKiln(['jobs'], { KILN_COORDINATOR: url, KILN_TOKEN: '' });
    expect(noToken.code).toBe(1);
    expect(noToken.stderr).toMatch(/refused the token \(401\)/);

    // On a terminal, --follow draws a progress bar in place (carriage return, erase line).
    const tty = await runKilnOnTerminal(['submit', join(dir, 'quick.json'), '--follow'], env);
    expect(tty.code).toBe(0);
    const ERASE_LINE = '\r\x1b[2K';
    expect(tty.stdout).toContain(`${ERASE_LINE}[${'#'.repeat(24)}] step 32/32  epoch 1  loss `);
    expect(tty.stdout).toMatch(/SUCCEEDED\r?\n$/);
  }, 180_000);

  it('keeps every job across a coordinator killed with SIGKILL; a running one comes back interrupted', async () => {
    const store = join(dir, 'b.sqlite');
    const first = await coordinator(store);
    const env = { KILN_COORDINATOR: first.url, KILN_TOKEN: TOKEN };
    expect((await runKiln(['submit', join(dir, 'quick.json'), '--follow'], env)).code).toBe(0);
    await runKiln(['submit', join(dir, 'long.json')], env);
    await runKiln(['submit', join(dir, 'long.json')], env);
    // The third waits for a worker.
    expect((await runKiln(['submit', join(dir, 'long.json')], env)).stdout).toBe('job 4 PENDING\n');
    first.c.process.kill('SIGKILL');
    await first.c.exited;
    await killAll();

    const second = await coordinator(store);
    const env2 = { KILN_COORDINATOR: second.url, KILN_TOKEN: TOKEN };
    const jobs = JSON.parse((await runKiln(['jobs', '--json'], env2)).stdout) as {
      id: string;
      state: string;
      interrupted: boolean;
    }[];
    expect(jobs.map((j) => [j.id, j.state, j.interrupted])).toEqual([
      ['1', 'SUCCEEDED', false],
      ['2', 'FAILED', true],
      ['3', 'FAILED', true],
      // The pending job is queued again and runs on the new coordinator.
      ['4', 'RUNNING', false],
    ]);
    const history = await runKiln(['logs', '2'], env2);
    expect(history.stdout).toMatch(
      /RUNNING on worker:0\n[\s\S]*FAILED: interrupted: the coordinator stopped while the job ran\n$/,
    );
    await runKiln(['cancel', '4'], env2);
  }, 180_000);

  it('on SIGTERM stops its running jobs, keeps them, and exits 0', async () => {
    const store = join(dir, 'c.sqlite');
    const first = await coordinator(store);
    const env = { KILN_COORDINATOR: first.url, KILN_TOKEN: TOKEN };
    expect((await runKiln(['submit', join(dir, 'long.json')], env)).stdout).toBe(
      'job 1 RUNNING on worker:0\n',
    );
    first.c.process.kill('SIGTERM');
    expect(await first.c.exited).toBe(0);
    await killAll();
    const second = await coordinator(store);
    const env2 = { KILN_COORDINATOR: second.url, KILN_TOKEN: TOKEN };
    const [job] = JSON.parse((await runKiln(['jobs', '--json'], env2)).stdout) as {
      state: string;
      interrupted: boolean;
      reason: string;
    }[];
    // Stopped on purpose, not lost: a clean shutdown is not an interruption.
    expect(job).toMatchObject({
      state: 'STOPPED',
      interrupted: false,
      reason: 'stopped: the coordinator shut down',
    });
  }, 180_000);
});
