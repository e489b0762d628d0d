import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeCheckpoint, Graph, type GraphData, type HostTensor, KilnError } from '@kiln/ir';
import { Data, Effect, Result, type Scope } from 'effect';
import type { Cluster } from '../cluster/cluster.js';
import { ClusterSession } from '../cluster/cluster-session.js';
import { Dataset, epochOrder } from '../data/dataset.js';
import type { JobEventBody, JobProgress, JobResult } from './job-events.js';
import { pinTo, prefixVariables, type TrainingGraph, trainingGraph } from './job-graph.js';
import { type Commit, commitFile, dropCommit, Recovery, readCommit, writeCommit } from './job-recovery.js';
import type { DatasetRef, JobSpec, RunJobSpec, TrainJobSpec } from './job-spec.js';

/** How often a running job reports progress at most: often enough to watch, rarely enough to store. */
const PROGRESS_EVERY_MILLIS = 500;

/** What a runner is given: where to run, how to report, and when to stop. */
export interface JobContext {
  readonly id: string;
  readonly cluster: Cluster;
  /** The workers the job holds, in order. */
  readonly workers: readonly string[];
  /** Appends events to the job's history (and to its followers). */
  emit(events: readonly JobEventBody[]): void;
  /** Keeps per-step values: the loss curve. */
  record(points: readonly (readonly [step: number, name: string, value: number])[]): void;
  /** Set when the job is asked to stop: the runner finishes its step and returns. */
  readonly stop: AbortSignal;
}

/** How a run ended: done, or stopped on request (with what it had done). */
export type RunOutcome = { readonly stopped: boolean; readonly result: JobResult };

/** Why a job failed: the error of the step, file or check that failed (a KilnError, mostly). */
export class JobFailed extends Data.TaggedError('JobFailed')<{ readonly error: unknown }> {
  override get message(): string {
    return this.error instanceof Error ? this.error.message : String(this.error);
  }
}

/**
 * Runs a job to its end on its workers. Interrupting the effect is the forced stop: the step in
 * flight is cancelled on the workers (steps are atomic, so it changed nothing), and the job's
 * resources are released on every path: its datasets closed, its variables freed on the workers,
 * its partitions unloaded.
 */
export function runJob(
  spec: JobSpec,
  forward: GraphData,
  ctx: JobContext,
): Effect.Effect<RunOutcome, JobFailed> {
  return Effect.scoped(spec.kind === 'run' ? runOnce(spec, forward, ctx) : train(spec, forward, ctx));
}

/** A promise-returning call as an effect: a failure is the job's, interruption aborts `signal`. */
const attempt = <A>(call: (signal: AbortSignal) => Promise<A>) =>
  Effect.tryPromise({ try: call, catch: (error) => new JobFailed({ error }) });

/** A synchronous call that may throw (a bad dataset, a graph that does not build). */
const check = <A>(call: () => A) => Effect.try({ try: call, catch: (error) => new JobFailed({ error }) });

/** Frees a session's variables and partitions on the workers. */
async function release(session: ClusterSession): Promise<void> {
  try {
    await session.dropVariables();
  } finally {
    await session.close();
  }
}

/** A session on the cluster, whose variables and partitions leave the workers with the job. */
const sessionFor = (graph: Graph, cluster: Cluster): Effect.Effect<ClusterSession, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => new ClusterSession(graph, cluster)),
    (session) => Effect.promise(() => release(session)).pipe(Effect.ignore),
  );

/** A dataset open for the job's lifetime, its fed tensors checked against the spec. */
const datasetFor = (ref: DatasetRef, field: string): Effect.Effect<Dataset, JobFailed, Scope.Scope> =>
  Effect.acquireRelease(
    check(() => openDataset(ref, field)),
    (data) => Effect.sync(() => data.close()),
  );

function runOnce(spec: RunJobSpec, forward: GraphData, ctx: JobContext) {
  return Effect.gen(function* () {
    const start = performance.now();
    // Its own variables, on its own worker: it shares the cluster with other jobs.
    const graph = yield* check(() =>
      Graph.from(pinTo(prefixVariables(forward, `job${ctx.id}`), ctx.workers[0]!)),
    );
    const session = yield* sessionFor(graph, ctx.cluster);
    const fetches = spec.fetches.map((name) => graph.tensor(name));
    const values = (yield* attempt((signal) =>
      session.run(fetches, { ...spec.feeds }, { signal }),
    )) as HostTensor[];
    const out: Record<string, { dtype: string; shape: number[]; data: number[] }> = {};
    const metrics: Record<string, number> = {};
    spec.fetches.forEach((name, i) => {
      const t = values[i]!;
      out[name] = { dtype: t.dtype, shape: [...t.shape], data: Array.from(t.data) };
      if (t.shape.length === 0) metrics[name] = t.data[0]!;
    });
    const result: JobResult = {
      metrics,
      steps: 1,
      seconds: (performance.now() - start) / 1000,
      fetches: out,
    };
    return { stopped: false, result } satisfies RunOutcome;
  });
}

function train(spec: TrainJobSpec, forward: GraphData, ctx: JobContext) {
  return Effect.gen(function* () {
    const started = performance.now();
    const data = yield* datasetFor(spec.dataset, 'dataset');
    // The step and its session: replaced by ones on fewer workers when the job goes on without a
    // lost one (see Recovery); whichever is current leaves the workers with the job.
    let step = yield* check(() => trainingGraph(spec, forward, ctx.workers, `job${ctx.id}`));
    const live = { session: new ClusterSession(step.graph, ctx.cluster) };
    yield* Effect.addFinalizer(() => Effect.promise(() => release(live.session)).pipe(Effect.ignore));
    const { batchSize, seed } = spec.loop;
    const perEpoch = Math.floor(data.rows / batchSize);
    if (perEpoch === 0)
      return yield* new JobFailed({
        error: new KilnError(
          'invalid-argument',
          `dataset: ${data.rows} rows make no batch of loop.batchSize ${batchSize}`,
        ),
      });
    const total = spec.loop.steps ?? perEpoch * spec.loop.epochs!;
    ctx.emit([
      {
        type: 'log',
        level: 'info',
        message: `training ${total} steps of ${batchSize} (${perEpoch} per epoch of ${data.rows} rows) on ${ctx.workers.join(', ')}`,
      },
    ]);
    let reportTensors = [...step.report.values()].flat();
    let order = epochOrder(data.rows, seed, 0);
    let loss = Number.NaN;
    let metrics: Record<string, number> = {};
    let lastReport = 0;
    let points: [number, string, number][] = [];
    let done = 0;
    const recovery = new Recovery(
      spec.recovery,
      ctx.cluster,
      ctx.workers,
      spec.parallelism.kind === 'data' && spec.parallelism.microBatches !== undefined,
    );
    // A job its coordinator was running when it was lost resumes from its last commit on disk.
    const durable = spec.checkpoint ? commitFile(spec.checkpoint.dir, ctx.id) : undefined;
    const resumed = durable ? yield* attempt(() => readCommit(durable)) : undefined;
    if (resumed) {
      const at = resumed.step;
      const rows = epochOrder(data.rows, seed, Math.floor(at / perEpoch));
      const first = yield* check(() => readBatch(data, spec.dataset, rows.subarray(0, batchSize)));
      // The plan places the variables on their workers; then they take the commit's values.
      yield* attempt(async () => {
        await live.session.plan([step.loss, ...reportTensors], step.feeds(first), step.train);
        await live.session.setVariables(resumed.variables);
      });
      recovery.committed(resumed);
      order = rows;
      done = at;
      ctx.emit([
        {
          type: 'log',
          level: 'warn',
          message: `resumed from the commit of step ${at} in ${durable} (its coordinator was lost while it ran)`,
        },
      ]);
    }
    const timedFrom = performance.now();
    for (let s = done; s < total && !ctx.stop.aborted; s++) {
      const epoch = Math.floor(s / perEpoch);
      const inEpoch = s % perEpoch;
      if (inEpoch === 0 && s > 0) order = epochOrder(data.rows, seed, epoch);
      const batch = yield* check(() =>
        readBatch(data, spec.dataset, order.subarray(inEpoch * batchSize, (inEpoch + 1) * batchSize)),
      );
      // The step and what it commits are one attempt: a worker lost while the commit reads the
      // variables back fails the step as surely as one lost while it ran, and recovers the same way.
      const at = s + 1;
      const ran = yield* Effect.result(
        attempt(async (signal) => {
          const out = (await live.session.run([step.loss, ...reportTensors], step.feeds(batch), {
            targets: step.train,
            signal,
          })) as HostTensor[];
          const value = out[0]!.data[0]!;
          if (!Number.isFinite(value))
            throw new KilnError('runtime', `step ${at}: the loss is ${value}; training diverged`);
          if (spec.checkpoint && at % spec.checkpoint.every === 0 && at < total) {
            await checkpoint(ctx, live.session, step, spec, at, false);
            // The durable commit: every variable, optimizer state too, for a coordinator that restarts.
            const commit: Commit = { step: at, variables: await live.session.variables() };
            await writeCommit(durable!, ctx.id, commit);
            recovery.committed(commit);
          } else if (recovery.due(at))
            recovery.committed({ step: at, variables: await live.session.variables() });
          return out;
        }),
      );
      if (Result.isFailure(ran)) {
        // A lost worker: back to the last commit (or the job fails with the step's error).
        const restore = async (variables: ReadonlyMap<string, HostTensor>, fewer?: readonly string[]) => {
          if (fewer) {
            // The same step on the workers left: the same micro-batches, so the same arithmetic.
            // The old session's variables are freed on them first (the lost worker's went with it),
            // so the new plan places its own.
            const next = trainingGraph(spec, forward, fewer, `job${ctx.id}`);
            await release(live.session);
            live.session = new ClusterSession(next.graph, ctx.cluster);
            step = next;
            reportTensors = [...step.report.values()].flat();
            await live.session.plan([step.loss, ...reportTensors], step.feeds(batch), step.train);
          }
          // A commit of more workers holds replicas the step on fewer no longer has.
          const kept = live.session.graph.nodes
            .filter((n) => n.op === 'variable')
            .map((n) => String(n.attrs.name));
          await live.session.setVariables(
            new Map(
              kept.flatMap((name) => {
                const v = variables.get(name);
                return v ? [[name, v] as const] : [];
              }),
            ),
          );
        };
        const resume = yield* attempt(() =>
          recovery.recover(ran.failure.error, at, restore, ctx.emit.bind(ctx)),
        );
        points = points.filter(([k]) => k <= resume);
        order = epochOrder(data.rows, seed, Math.floor(resume / perEpoch));
        s = resume - 1;
        continue;
      }
      const [lossValue, ...reported] = ran.success;
      done = at;
      loss = lossValue!.data[0]!;
      metrics = meanPerOutput(step.report, reported);
      points.push(
        [done, 'loss', loss],
        ...Object.entries(metrics).map(([k, v]) => [done, k, v] as [number, string, number]),
      );
      const now = performance.now();
      if (now - lastReport >= PROGRESS_EVERY_MILLIS || done === total || done === 1) {
        lastReport = now;
        ctx.record(points);
        points = [];
        ctx.emit([progress(done, total, epoch, loss, metrics, batchSize, (now - timedFrom) / 1000)]);
      }
    }
    if (points.length) ctx.record(points);
    const stopped = done < total;
    const final: Record<string, number> = { loss, ...metrics };
    let checkpointFile: string | undefined;
    if (!stopped) {
      if (spec.evaluate) Object.assign(final, yield* evaluate(spec, step, live.session, ctx));
      if (spec.checkpoint)
        checkpointFile = yield* attempt(() => checkpoint(ctx, live.session, step, spec, done, true));
      if (durable) yield* attempt(() => dropCommit(durable));
    }
    const result: JobResult = {
      metrics: final,
      steps: done,
      seconds: (performance.now() - started) / 1000,
      ...(checkpointFile !== undefined ? { checkpoint: checkpointFile } : {}),
    };
    return { stopped, result } satisfies RunOutcome;
  });
}

function progress(
  step: number,
  steps: number,
  epoch: number,
  loss: number,
  metrics: Record<string, number>,
  batchSize: number,
  seconds: number,
): JobEventBody {
  const perSecond = step / Math.max(seconds, 1e-9);
  const p: JobProgress = {
    step,
    steps,
    epoch,
    loss,
    samplesPerSecond: perSecond * batchSize,
    etaSeconds: (steps - step) / perSecond,
    metrics,
  };
  return { type: 'progress', ...p };
}

/** The mean over replicas of each reported output. */
function meanPerOutput(
  report: TrainingGraph['report'],
  values: readonly HostTensor[],
): Record<string, number> {
  const out: Record<string, number> = {};
  let i = 0;
  for (const [name, copies] of report) {
    let sum = 0;
    for (let c = 0; c < copies.length; c++) sum += values[i++]!.data[0]!;
    out[name] = sum / copies.length;
  }
  return out;
}

function openDataset(ref: DatasetRef, field: string): Dataset {
  let data: Dataset;
  try {
    data = Dataset.open([...ref.files]);
  } catch (e) {
    if (e instanceof KilnError) throw new KilnError(e.code, `${field}: ${e.message}`, { cause: e });
    throw e;
  }
  for (const [placeholder, tensor] of Object.entries(ref.feeds))
    if (!Object.hasOwn(data.tensors, tensor)) {
      data.close();
      throw new KilnError(
        'invalid-argument',
        `${field}.feeds.${placeholder}: the dataset has no tensor '${tensor}'; it has ${data.names.join(', ')}`,
      );
    }
  return data;
}

function readBatch(data: Dataset, ref: DatasetRef, rows: Int32Array): Record<string, HostTensor> {
  return Object.fromEntries(
    Object.entries(ref.feeds).map(([placeholder, tensor]) => [placeholder, data.readRows(tensor, rows)]),
  );
}

/** The mean of each evaluation output over the held-out dataset's whole batches. */
function evaluate(spec: TrainJobSpec, step: TrainingGraph, session: ClusterSession, ctx: JobContext) {
  return Effect.scoped(
    Effect.gen(function* () {
      const ev = spec.evaluate!;
      const data = yield* datasetFor(ev.dataset, 'evaluate.dataset');
      const outputs = ev.outputs.map((name) => step.output(name));
      const sums = new Array<number>(outputs.length).fill(0);
      const batches = Math.floor(data.rows / ev.batchSize);
      for (let b = 0; b < batches; b++) {
        const rows = Int32Array.from({ length: ev.batchSize }, (_, i) => b * ev.batchSize + i);
        const batch = yield* check(() => step.evalFeeds(readBatch(data, ev.dataset, rows)));
        const values = (yield* attempt((signal) => session.run(outputs, batch, { signal }))) as HostTensor[];
        values.forEach((v, i) => {
          sums[i]! += v.data[0]!;
        });
      }
      const means = Object.fromEntries(ev.outputs.map((name, i) => [name, sums[i]! / Math.max(batches, 1)]));
      ctx.emit([
        {
          type: 'log',
          level: 'info',
          message: `evaluation on ${batches * ev.batchSize} held-out rows: ${Object.entries(means)
            .map(([k, v]) => `${k} ${v.toFixed(4)}`)
            .join(', ')}`,
        },
      ]);
      return means;
    }),
  );
}

/** Writes the forward graph's weights (replica 0's) atomically; returns the file. */
async function checkpoint(
  ctx: JobContext,
  session: ClusterSession,
  step: TrainingGraph,
  spec: TrainJobSpec,
  steps: number,
  final: boolean,
): Promise<string> {
  const variables: Record<string, HostTensor> = {};
  for (const [name, onWorkers] of step.variables) variables[name] = await session.readVariable(onWorkers);
  const dir = spec.checkpoint!.dir;
  await mkdir(dir, { recursive: true });
  const file = join(dir, final ? `job-${ctx.id}.ckpt` : `job-${ctx.id}-step-${steps}.ckpt`);
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, encodeCheckpoint({ variables, metadata: { job: ctx.id, name: spec.name, steps } }));
  await rename(tmp, file);
  ctx.emit([{ type: 'log', level: 'info', message: `checkpoint at step ${steps}: ${file}` }]);
  return file;
}
