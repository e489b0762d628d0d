import { KilnError } from '@kiln/ir';
import { describe, expect, it } from 'vitest';
import { parseJobSpec, workersNeeded } from '../../src/jobs/index.js';
import { trainSpec } from './fixtures.js';

/** The message parseJobSpec throws for `spec`, or undefined if it accepts it. */
function problems(spec: unknown): string | undefined {
  try {
    parseJobSpec(spec);
    return undefined;
  } catch (e) {
    expect(e).toBeInstanceOf(KilnError);
    return (e as KilnError).message;
  }
}

const dataParallel = (workers: number, batchSize: number, microBatches?: number) =>
  trainSpec('train.safetensors', {
    loop: { steps: 1, batchSize, seed: 1 },
    parallelism: { kind: 'data', workers, ...(microBatches === undefined ? {} : { microBatches }) },
  });

describe('parseJobSpec: data parallelism with micro-batches', () => {
  it('takes microBatches, on as many workers as micro-batches or fewer, spread evenly or not', () => {
    const { spec, graph } = parseJobSpec(dataParallel(3, 24, 12));
    expect(spec.kind === 'train' && spec.parallelism).toEqual({ kind: 'data', workers: 3, microBatches: 12 });
    expect(workersNeeded(spec, graph)).toEqual({ count: 3 });
    // 24 rows do not split over 5 workers, but into 12 micro-batches of 2 they do: 3, 3, 2, 2, 2.
    expect(problems(dataParallel(5, 24, 12))).toBeUndefined();
    expect(problems(dataParallel(12, 12, 12))).toBeUndefined();
    // Without micro-batches, the batch must still split over the workers.
    expect(problems(dataParallel(5, 24))).toContain(
      'loop.batchSize: 24 does not split evenly over 5 data-parallel workers',
    );
  });

  it('names each bad microBatches value by its field', () => {
    expect(problems(dataParallel(2, 16, 12))).toContain(
      'loop.batchSize: 16 does not split into 12 equal micro-batches (parallelism.microBatches)',
    );
    expect(problems(dataParallel(5, 16, 4))).toContain(
      'parallelism.workers: 5 workers for 4 micro-batches; each worker needs at least one (microBatches >= workers)',
    );
    // Both at once: every problem of a spec is reported in one error.
    const both = problems(dataParallel(8, 18, 4));
    expect(both).toContain('loop.batchSize: 18 does not split into 4 equal micro-batches');
    expect(both).toContain('parallelism.workers: 8 workers for 4 micro-batches');
    for (const bad of [0, 1.5, '12'])
      expect(problems(dataParallel(1, 12, bad as number))).toContain(
        `parallelism.microBatches: must be an integer >= 1; got ${JSON.stringify(bad)}`,
      );
    expect(
      problems(trainSpec('train.safetensors', { parallelism: { kind: 'none', microBatches: 4 } })),
    ).toContain('parallelism.microBatches: unknown field; the fields here are kind');
  });
});
