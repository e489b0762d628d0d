import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  decodeCheckpoint,
  Graph,
  HostTensor,
  KilnError,
  matmul,
  mean,
  randomNormal,
  square,
  sub,
  tanh,
} from '@kiln/ir';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSafetensors } from '../../src/data/index.js';
import { setDefaultWorkerDevice, ThreadPool } from '../../src/index.js';
import {
  type JobEvent,
  JobService,
  Jobs,
  LocalJobs,
  openJobs,
  SqliteJobStore,
} from '../../src/jobs/index.js';
import { regressionData, tempDir, trainSpec } from './fixtures.js';

setDefaultWorkerDevice({ module: '@kiln/backend-cpu' });

async function collect(events: AsyncIterable<JobEvent>): Promise<JobEvent[]> {
  const out: JobEvent[] = [];
  for await (const e of events) out.push(e);
  return out;
}

describe('jobs on an embedded cluster', () => {
  let jobs: Jobs;
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let train: string;
  let held: string;

  beforeAll(async () => {
    tmp = await tempDir();
    train = await regressionData(tmp.dir, 'train.safetensors', 256, 1);
    held = await regressionData(tmp.dir, 'held.safetensors', 64, 2);
    jobs = await openJobs({ cluster: { workers: 2 }, cancelGraceMillis: 2_000 });
  });
  afterAll(async () => {
    await jobs?.close();
    await tmp?.remove();
  });

  it('runs a training job to SUCCEEDED, with progress, logs, metrics, evaluation and a checkpoint', async () => {
    const job = await jobs.submit(
      trainSpec(train, {
        report: ['mse2'],
        evaluate: { dataset: { files: [held], feeds: { x: 'x', y: 'y' } }, batchSize: 32, outputs: ['loss'] },
        checkpoint: { every: 10, dir: join(tmp.dir, 'ckpt') },
      }),
    );
    const events = await collect(job.events());
    const states = events.flatMap((e) => (e.type === 'state' ? [e.state] : []));
    expect(states).toEqual(['PENDING', 'RUNNING', 'SUCCEEDED']);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    const progress = events.flatMap((e) => (e.type === 'progress' ? [e] : []));
    expect(progress.at(-1)).toMatchObject({ step: 32, steps: 32, epoch: 1 });
    for (const p of progress) {
      expect(p.samplesPerSecond).toBeGreaterThan(0);
      expect(p.metrics.mse2).toBeCloseTo(p.loss, 5);
    }
    const result = await job.result();
    // The data is exactly linear: SGD drives the held-out error far below its start (mean y^2 ~ 5).
    expect(result.metrics.loss).toBeLessThan(0.05);
    expect(result.steps).toBe(32);
    const curve = await job.metric('loss');
    expect(curve.map(([s]) => s)).toEqual(Array.from({ length: 32 }, (_, i) => i + 1));
    expect(curve.at(-1)![1]).toBeLessThan(curve[0]![1] / 10);
    const checkpoint = decodeCheckpoint(new Uint8Array(await readFile(result.checkpoint!)));
    expect(Object.keys(checkpoint.variables).sort()).toEqual(['b', 'w']);
    // The learned weights approach the true ones, 0.5 -1 2 0.25 and bias 0.5.
    const w = Array.from(checkpoint.variables.w!.data);
    [0.5, -1, 2, 0.25].forEach((v, i) => expect(Math.abs(w[i]! - v)).toBeLessThan(0.15));
    const logs = events.flatMap((e) => (e.type === 'log' ? [e.message] : []));
    expect(logs.some((m) => m.startsWith('checkpoint at step 10'))).toBe(true);
    expect(logs.some((m) => m.startsWith('evaluation on 64 held-out rows'))).toBe(true);
    const info = await job.status();
    expect(info).toMatchObject({ state: 'SUCCEEDED', workers: ['worker:0'], interrupted: false });
  });

  it('gives the same weights data-parallel on 2 workers as on 1 (same data order)', async () => {
    const one = await jobs.submit(
      trainSpec(train, { checkpoint: { every: 1000, dir: join(tmp.dir, 'one') } }),
    );
    const two = await jobs.submit(
      trainSpec(train, {
        parallelism: { kind: 'data', workers: 2 },
        checkpoint: { every: 1000, dir: join(tmp.dir, 'two') },
      }),
    );
    const [a, b] = await Promise.all([one.result(), two.result()]);
    expect((await two.status()).workers).toEqual(['worker:0', 'worker:1']);
    const wa = decodeCheckpoint(new Uint8Array(await readFile(a.checkpoint!))).variables.w!.data;
    const wb = decodeCheckpoint(new Uint8Array(await readFile(b.checkpoint!))).variables.w!.data;
    for (let i = 0; i < wa.length; i++) expect(wb[i]).toBeCloseTo(wa[i]!, 4);
  });

  it('gives bit-identical weights, losses and metrics on 1 and 2 workers with microBatches', async () => {
    const spec = (workers: number) =>
      trainSpec(train, {
        optimizer: { kind: 'adam', learningRate: 0.05 },
        report: ['mse2'],
        parallelism: { kind: 'data', workers, microBatches: 4 },
        evaluate: { dataset: { files: [held], feeds: { x: 'x', y: 'y' } }, batchSize: 32, outputs: ['loss'] },
        checkpoint: { every: 1000, dir: join(tmp.dir, `micro-${workers}`) },
      });
    const one = await jobs.submit(spec(1));
    const two = await jobs.submit(spec(2));
    const [a, b] = await Promise.all([one.result(), two.result()]);
    expect((await two.status()).workers).toEqual(['worker:0', 'worker:1']);
    const wa = decodeCheckpoint(new Uint8Array(await readFile(a.checkpoint!))).variables;
    const wb = decodeCheckpoint(new Uint8Array(await readFile(b.checkpoint!))).variables;
    expect(Object.keys(wb).sort()).toEqual(['b', 'w']);
    for (const name of ['w', 'b'])
      expect(Array.from(wb[name]!.data), name).toEqual(Array.from(wa[name]!.data));
    // The loss curve, the reported metric (the mean over the micro-batches) and the evaluation.
    expect(await two.metric('loss')).toEqual(await one.metric('loss'));
    expect(b.metrics).toEqual(a.metrics);
    // The report is the mean of the micro-batches' copies: the batch's mean, as the loss is.
    const losses = await two.metric('loss');
    (await two.metric('mse2')).forEach(([, v], i) => expect(v).toBeCloseTo(losses[i]![1], 5));
    expect(a.steps).toBe(32);
  });

  it('keeps the variables of two jobs of one model apart, optimizer state included', async () => {
    // Side by side on the two workers; Adam's step counter and slots are variables too.
    const spec = (dir: string) =>
      trainSpec(train, {
        optimizer: { kind: 'adam', learningRate: 0.05 },
        checkpoint: { every: 1000, dir: join(tmp.dir, dir) },
      });
    const [a, b] = await Promise.all([jobs.submit(spec('adam-a')), jobs.submit(spec('adam-b'))]);
    expect((await a.status()).workers).not.toEqual((await b.status()).workers);
    const [ra, rb] = await Promise.all([a.result(), b.result()]);
    // The same spec gives the same weights, bit for bit, whichever worker ran it.
    const wa = decodeCheckpoint(new Uint8Array(await readFile(ra.checkpoint!))).variables;
    const wb = decodeCheckpoint(new Uint8Array(await readFile(rb.checkpoint!))).variables;
    expect(Array.from(wb.w!.data)).toEqual(Array.from(wa.w!.data));
    expect(ra.metrics.loss).toBe(rb.metrics.loss);
  });

  it('makes submit idempotent with a submission id', async () => {
    const spec = trainSpec(train, { submissionId: 'once-only', loop: { steps: 2, batchSize: 16, seed: 1 } });
    const first = await jobs.submit(spec);
    const again = await jobs.submit(spec);
    expect(again.id).toBe(first.id);
    await first.result();
    expect((await jobs.list()).filter((j) => j.submissionId === 'once-only')).toHaveLength(1);
  });

  it('cancels a PENDING job at once and a RUNNING one after its step', async () => {
    // Two long jobs take both workers; the third waits.
    const long = { loop: { steps: 100_000, batchSize: 16, seed: 1 } };
    const a = await jobs.submit(trainSpec(train, long));
    const b = await jobs.submit(trainSpec(train, long));
    const c = await jobs.submit(trainSpec(train, long));
    expect((await c.status()).state).toBe('PENDING');
    const stoppedC = await c.cancel();
    expect(stoppedC).toMatchObject({ state: 'STOPPED', reason: 'cancelled before it started' });
    // Wait until a has made progress, then stop it.
    for await (const e of a.events()) if (e.type === 'progress' && e.step >= 5) break;
    await a.cancel();
    await b.cancel();
    await expect(a.result()).rejects.toThrow(/STOPPED: cancelled after step \d+/);
    await expect(b.result()).rejects.toMatchObject({ code: 'cancelled' });
    const info = await a.status();
    expect(info.result!.steps).toBeGreaterThanOrEqual(5);
    expect(info.result!.steps).toBeLessThan(100_000);
  });

  it('fails a job that can never fit at once, saying why', async () => {
    const job = await jobs.submit(trainSpec(train, { parallelism: { kind: 'data', workers: 4 } }));
    const info = await job.status();
    expect(info.state).toBe('FAILED');
    expect(info.reason).toBe("it can never run here: it needs 4 'cpu' workers and the cluster has 2");
    const gpu = await jobs.submit(trainSpec(train, { device: 'webgpu' }));
    expect((await gpu.status()).reason).toMatch(
      /no worker serves device 'webgpu' \(the workers serve: cpu\)/,
    );
  });

  it('rejects a bad spec with every bad field named, storing nothing', async () => {
    const before = (await jobs.list()).length;
    const bad = trainSpec(train, {
      loss: 'nope',
      loop: { steps: 0, batchSize: 16, seed: 1, shuffle: true },
      optimizer: { kind: 'adagrad', learningRate: -1 },
      recovery: { retries: -1, commitEvery: 10, everyMinute: true },
    });
    const error = await jobs.submit(bad).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(KilnError);
    const message = (error as KilnError).message;
    expect(message).toContain(
      'loop.shuffle: unknown field; the fields here are steps, epochs, batchSize, seed',
    );
    expect(message).toContain('loop.steps: must be an integer >= 1; got 0');
    expect(message).toContain("optimizer.kind: must be one of 'adam', 'sgd'; got \"adagrad\"");
    expect(message).toContain('optimizer.learningRate: must be a number > 0; got -1');
    expect(message).toContain('recovery.retries: must be an integer >= 0; got -1');
    expect(message).toContain(
      'recovery.everyMinute: unknown field; the fields here are commitEvery, retries, replaceTimeoutMillis',
    );
    expect((await jobs.list()).length).toBe(before);
    const unknownOutput = await jobs
      .submit(trainSpec(train, { loss: 'nope' }))
      .catch((e: Error) => e.message);
    expect(unknownOutput).toContain("loss: the graph has no output 'nope'; its outputs: pred, loss, mse2");
  });

  it('fails a job whose dataset lacks a fed tensor, naming the field; its last log line reaches a follower', async () => {
    const job = await jobs.submit(
      trainSpec(train, { dataset: { files: [train], feeds: { x: 'x', y: 'labels' } } }),
    );
    const why = "dataset.feeds.y: the dataset has no tensor 'labels'; it has x, y";
    const events = await collect(job.events());
    expect(events.at(-2)).toMatchObject({ type: 'log', level: 'error', message: why });
    expect(events.at(-1)).toMatchObject({ type: 'state', state: 'FAILED', reason: why });
    await expect(job.result()).rejects.toThrow(why);
  });

  it("follows from now, resumes after a seq, and ends a finished job's stream", async () => {
    const job = await jobs.submit(trainSpec(train, { loop: { steps: 3, batchSize: 16, seed: 1 } }));
    const all = await collect(job.events());
    const rest = await collect(job.events({ from: 2 }));
    expect(rest).toEqual(all.slice(2));
    expect(await collect(job.events({ from: 'now' }))).toEqual([]);
    expect(all.at(-1)).toMatchObject({ type: 'state', state: 'SUCCEEDED' });
  });

  it('runs a graph-only job', async () => {
    const job = await jobs.submit({
      kind: 'run',
      name: 'predict',
      graph: trainSpec(train).graph,
      feeds: { x: { shape: [1, 4], data: [1, 2, 3, 4] }, y: { shape: [1, 1], data: [5] } },
      fetches: ['loss', 'pred'],
    });
    const result = await job.result();
    // Weights start at zero: the prediction is 0 and the loss (0 - 5)^2.
    expect(result.metrics.loss).toBe(25);
    expect(result.fetches!.pred).toEqual({ dtype: 'float32', shape: [1, 1], data: [0] });
  });
});

describe('a finished job on a cluster that lives on', () => {
  it('leaves no variable of it on the workers: weights and optimizer state are freed', async () => {
    const tmp = await tempDir();
    const pool = await ThreadPool.create({ workers: 2 });
    const store = new SqliteJobStore(':memory:');
    try {
      const service = await JobService.start(store, pool);
      const train = await regressionData(tmp.dir, 'train.safetensors', 64, 1);
      const info = service.submit(trainSpec(train, { optimizer: { kind: 'adam', learningRate: 0.05 } }));
      const held: string[] = [];
      // While it runs, its variables (weights and Adam's state) have homes on its worker.
      const stop = service.follow(info.id, (e) => {
        if (e.type === 'progress' && held.length === 0)
          held.push(
            ...pool
              .homes()
              .filter(([name]) => name.startsWith(`job${info.id}/`))
              .map(([name]) => name),
          );
      });
      const jobs = new Jobs(new LocalJobs(service));
      await jobs.job(info.id).result();
      stop();
      expect(held).toEqual(expect.arrayContaining([`job${info.id}/adam/step`, `job${info.id}/replica0/w`]));
      expect(pool.homes().filter(([name]) => name.startsWith(`job${info.id}/`))).toEqual([]);
      await expect(
        pool.request('worker:0', { t: 'getVariables', names: [`job${info.id}/replica0/w`] }, 'read'),
      ).rejects.toThrow(`holds no variable 'job${info.id}/replica0/w'`);
      await service.close();
    } finally {
      await pool.close();
      store.close();
      await tmp.remove();
    }
  });
});

describe('a forced stop', () => {
  it('cancels the step in flight once the grace period is over, and frees the workers', async () => {
    const tmp = await tempDir();
    const pool = await ThreadPool.create({ workers: 1 });
    const store = new SqliteJobStore(':memory:');
    try {
      // Steps of about a second: three 512 x 512 layers at batch 512, forward and backward.
      const g = new Graph();
      const x = g.placeholder('float32', [null, 512], 'x');
      const y = g.placeholder('float32', [null, 512], 'y');
      let h = x;
      for (let i = 0; i < 3; i++)
        h = tanh(matmul(h, g.variable(`w${i}`, randomNormal(g, [512, 512], { seed: i }))));
      g.output('loss', mean(square(sub(h, y))));
      const rows = new HostTensor('float32', [512, 512], new Float32Array(512 * 512).fill(0.01));
      const file = join(tmp.dir, 'wide.safetensors');
      writeSafetensors(file, { x: rows, y: rows });
      const service = await JobService.start(store, pool, { cancelGraceMillis: 50 });
      const jobs = new Jobs(new LocalJobs(service));
      const info = service.submit({
        name: 'wide',
        graph: g,
        loss: 'loss',
        optimizer: { kind: 'sgd', learningRate: 0.01 },
        dataset: { files: [file], feeds: { x: 'x', y: 'y' } },
        loop: { steps: 1000, batchSize: 512, seed: 1 },
      });
      const job = jobs.job(info.id);
      for await (const e of job.events()) if (e.type === 'progress') break;
      await job.cancel();
      await expect(job.result()).rejects.toThrow(
        'STOPPED: cancelled: the step in flight was cancelled after the grace period',
      );
      // The step in flight was cancelled (the reason says so), and it left nothing behind.
      const status = await job.status();
      expect(status.state).toBe('STOPPED');
      expect(pool.homes().filter(([name]) => name.startsWith(`job${info.id}/`))).toEqual([]);
      // The worker is free for the next job at once.
      const next = service.submit(
        trainSpec(await regressionData(tmp.dir, 'r.safetensors', 32, 1), {
          loop: { steps: 2, batchSize: 16, seed: 1 },
        }),
      );
      expect((await jobs.job(next.id).result()).steps).toBe(2);
      await service.close();
    } finally {
      await pool.close();
      store.close();
      await tmp.remove();
    }
  });
});
