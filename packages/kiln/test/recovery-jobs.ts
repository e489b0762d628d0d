import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  add,
  Graph,
  HostTensor,
  loadCheckpointFile,
  matmul,
  mean,
  relu,
  square,
  sub,
  tensor,
} from 'kiln-tensor';
import { type JobEvent, type JobSpecInput, writeSafetensors } from 'kiln-tensor/jobs';
import { expect } from 'vitest';

/**
 * What the fault tests share: a small regression job (Adam, a hidden layer) on a dataset written
 * to a temporary directory, and the checks that a job with faults ended as one without them.
 */
export interface RecoveryFixture {
  readonly dir: string;
  /** A training job of `steps` steps on the fixture's dataset, checkpointed at its end. */
  spec(name: string, parallelism: object, steps?: number): JobSpecInput;
  remove(): Promise<void>;
}

export async function recoveryFixture(prefix: string): Promise<RecoveryFixture> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const data = join(dir, 'data.safetensors');
  const xs = Float32Array.from({ length: 240 * 4 }, (_, i) => Math.sin(i * 0.37));
  const ys = Float32Array.from({ length: 240 }, (_, r) => xs[r * 4]! - 2 * xs[r * 4 + 2]! + 0.5);
  writeSafetensors(data, {
    x: new HostTensor('float32', [240, 4], xs),
    y: new HostTensor('float32', [240, 1], ys),
  });
  return {
    dir,
    spec(name, parallelism, steps = 1500) {
      const g = new Graph();
      const x = g.placeholder('float32', [null, 4], 'x');
      const y = g.placeholder('float32', [null, 1], 'y');
      const w1 = g.variable('w1', tensor(g, [0.1, -0.2, 0.3, 0.05, -0.1, 0.2, 0.15, -0.3], [4, 2]));
      const w2 = g.variable('w2', tensor(g, [0.5, -0.4], [2, 1]));
      const b = g.variable('b', tensor(g, [0], [1]));
      g.output('loss', mean(square(sub(add(matmul(relu(matmul(x, w1)), w2), b), y))));
      return {
        name,
        graph: g,
        loss: 'loss',
        optimizer: { kind: 'adam', learningRate: 0.01 },
        dataset: { files: [data], feeds: { x: 'x', y: 'y' } },
        loop: { steps, batchSize: 24, seed: 5 },
        parallelism,
        recovery: { commitEvery: 25, replaceTimeoutMillis: 30_000 },
        checkpoint: { every: 100_000, dir: join(dir, name) },
      };
    },
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

export const until = async (ok: () => boolean, what: string, millis = 30_000) => {
  const end = performance.now() + millis;
  while (!ok()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

/** A finished job's log lines, oldest first. */
export async function logsOf(job: { events(): AsyncIterable<JobEvent> }): Promise<string[]> {
  const logs: string[] = [];
  for await (const e of job.events()) {
    if (e.type === 'log') logs.push(e.message);
    if (e.type === 'state' && e.state === 'SUCCEEDED') break;
  }
  return logs;
}

/** The two checkpoints hold the same variables, bit for bit; returns the first. */
export async function expectSameWeights(file: string, other: string) {
  const a = await loadCheckpointFile(file);
  const b = await loadCheckpointFile(other);
  expect(Object.keys(a.variables).sort()).toEqual(Object.keys(b.variables).sort());
  for (const [name, t] of Object.entries(a.variables))
    expect(Buffer.from(t.data.buffer).equals(Buffer.from(b.variables[name]!.data.buffer)), name).toBe(true);
  return a;
}
