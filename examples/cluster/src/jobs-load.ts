import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { add, Graph, HostTensor, matmul, mean, Prng, square, sub, tensor } from 'kiln-tensor';
import { connectJobs, type JobInfo, type Jobs, writeSafetensors } from 'kiln-tensor/jobs';

/**
 * The jobs load: `clients` programs connect to one coordinator at once and each submits
 * `perClient` small training jobs (linear regression, a few steps) as fast as it can, each with
 * its own submission id. Used by the load test (none lost, none run twice, started in order) and
 * the jobs benchmark (jobs per minute, submit to RUNNING).
 */
export interface LoadResult {
  /** The jobs this load submitted, as the coordinator lists them. */
  readonly jobs: readonly JobInfo[];
  /** Every job's states in order, by id. */
  readonly states: ReadonlyMap<string, readonly string[]>;
  /** From the first submit to the last job's end. */
  readonly seconds: number;
  readonly jobsPerMinute: number;
}

/** A tiny job's graph and dataset, in a temporary folder the caller removes with `remove`. */
export function tinyJob(steps = 5) {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-jobs-load-'));
  const g = new Graph();
  const x = g.placeholder('float32', [null, 4], 'x');
  const y = g.placeholder('float32', [null, 1], 'y');
  const w = g.variable('w', tensor(g, [0, 0, 0, 0], [4, 1]));
  const b = g.variable('b', tensor(g, [0], [1]));
  g.output('loss', mean(square(sub(add(matmul(x, w), b), y))));
  const rng = new Prng(1);
  const xs = Float32Array.from({ length: 256 * 4 }, () => rng.normal());
  const ys = Float32Array.from({ length: 256 }, (_, r) => xs[r * 4]! - xs[r * 4 + 2]!);
  const data = join(dir, 'data.safetensors');
  writeSafetensors(data, {
    x: new HostTensor('float32', [256, 4], xs),
    y: new HostTensor('float32', [256, 1], ys),
  });
  const spec = (name: string, submissionId?: string) => ({
    name,
    ...(submissionId ? { submissionId } : {}),
    graph: g,
    loss: 'loss',
    optimizer: { kind: 'sgd', learningRate: 0.05 },
    dataset: { files: [data], feeds: { x: 'x', y: 'y' } },
    loop: { steps, batchSize: 32, seed: 1 },
  });
  return { spec, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Submits clients x perClient jobs at once and waits for every one to end. */
export async function jobsLoad(
  url: string,
  token: string,
  /** `tag` keeps the submission ids of one round apart from another's (default 'load'). */
  options: { clients: number; perClient: number; steps?: number; tag?: string },
): Promise<LoadResult> {
  const job = tinyJob(options.steps);
  const clients: Jobs[] = await Promise.all(
    Array.from({ length: options.clients }, () => connectJobs(url, { token, log: () => {} })),
  );
  try {
    const start = performance.now();
    const handles = (
      await Promise.all(
        clients.map((c, ci) =>
          Promise.all(
            Array.from({ length: options.perClient }, (_, k) =>
              c.submit(job.spec(`load ${ci}.${k}`, `${options.tag ?? 'load'}-${ci}-${k}`)),
            ),
          ),
        ),
      )
    ).flat();
    const states = new Map<string, string[]>();
    await Promise.all(
      handles.map(async (h) => {
        const seen: string[] = [];
        for await (const e of h.events()) if (e.type === 'state') seen.push(e.state);
        states.set(h.id, seen);
      }),
    );
    const seconds = (performance.now() - start) / 1000;
    const ids = new Set(handles.map((h) => h.id));
    const jobs = (await clients[0]!.list()).filter((j) => ids.has(j.id));
    return { jobs, states, seconds, jobsPerMinute: (handles.length / seconds) * 60 };
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    job.remove();
  }
}

/** Milliseconds from submit to the RUNNING event, for one job on an idle cluster; it then ends. */
export async function submitToRunning(
  jobs: Jobs,
  spec: ReturnType<ReturnType<typeof tinyJob>['spec']>,
): Promise<number> {
  const start = performance.now();
  const handle = await jobs.submit(spec);
  let running = Number.NaN;
  for await (const e of handle.events())
    if (e.type === 'state' && e.state === 'RUNNING' && Number.isNaN(running))
      running = performance.now() - start;
  return running;
}
