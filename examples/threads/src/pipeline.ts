import { epochOrder, gatherBatch, type Split } from '@kiln/example-mnist/data';
import { cnnForward } from '@kiln/example-mnist/models';
import {
  Adam,
  accumulateGradients,
  type Cluster,
  ClusterSession,
  formatSchedule,
  HostTensor,
  type TraceEntry,
} from 'kiln-tensor';
import { accuracy } from './evaluate.js';

export interface PipelineResult {
  readonly samplesPerSecond: number;
  readonly accuracy: number;
  readonly schedule: string;
  /** The mean loss of each step's micro-batches, step 0 first. */
  readonly losses: readonly number[];
}

/** Rows [k*m, (k+1)*m) of a batch, as views. */
function slice(t: HostTensor, k: number, m: number): HostTensor {
  const row = t.shape[1]!;
  return new HostTensor(
    'float32',
    [m, row],
    (t.data as Float32Array).subarray(k * m * row, (k + 1) * m * row),
  );
}

/**
 * Trains the CNN pipeline-parallel over a cluster of two workers (threads or processes): the
 * convolutions on worker:0, the dense layer
 * and the loss on worker:1. Each batch is cut into micro-batches that flow through both workers
 * overlapped (GPipe); their gradients accumulate on the worker holding each weight, and one Adam
 * update per step applies their mean.
 */
export async function trainPipeline(
  pool: Cluster,
  train: Split,
  test: Split,
  options: {
    readonly steps: number;
    readonly batchSize: number;
    readonly microBatches: number;
    readonly log?: (line: string) => void;
  },
): Promise<PipelineResult> {
  const model = cnnForward({ features: 'worker:0', classifier: 'worker:1' });
  const steps = accumulateGradients(model.loss, new Adam({ learningRate: 2e-3 }), {
    microBatches: options.microBatches,
  });
  const session = new ClusterSession(model.graph, pool);
  const m = options.batchSize / options.microBatches;
  const perEpoch = Math.floor(train.labels.length / options.batchSize);
  let trace: TraceEntry[] = [];
  let start = 0;
  const stepLosses: number[] = [];
  for (let step = 0; step <= options.steps; step++) {
    // Step 0 plans, loads and initializes: the clock starts after it.
    if (step === 1) start = performance.now();
    const order = epochOrder(train.labels.length, 11, Math.floor(step / perEpoch));
    const at = (step % perEpoch) * options.batchSize;
    const { x, y } = gatherBatch(train, order.subarray(at, at + options.batchSize));
    const micro = Array.from({ length: options.microBatches }, (_, k) => ({
      x: slice(x, k, m),
      y: slice(y, k, m),
    }));
    trace = [];
    const losses = await session.runMany(model.loss, micro, { targets: steps.accumulate, trace });
    await session.run([], {}, { targets: steps.apply });
    const loss = losses.reduce((s, l) => s + l.data[0]!, 0) / losses.length;
    stepLosses.push(loss);
    if (step % 10 === 0) {
      options.log?.(`  pipeline: step ${step}/${options.steps} loss ${loss.toFixed(4)}`);
    }
  }
  const seconds = (performance.now() - start) / 1000;
  return {
    samplesPerSecond: (options.steps * options.batchSize) / seconds,
    accuracy: await accuracy(session, model.logits, 'x', test),
    schedule: formatSchedule(trace),
    losses: stepLosses,
  };
}
