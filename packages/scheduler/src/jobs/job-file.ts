import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { KilnError } from '@kiln/ir';
import type { JobSpecInput } from './job-spec.js';

/**
 * Reads a job file (`kiln submit job.json`): the spec as JSON, with `graph` the path of a graph
 * file (saveGraphFile) and dataset files and the checkpoint directory as paths; relative paths are
 * relative to the job file. The graph is read here and travels as bytes; datasets and the
 * checkpoint directory are paths on the coordinator's machine (made absolute, so a coordinator
 * on this machine finds them wherever it was started).
 */
export async function loadJobFile(path: string): Promise<JobSpecInput> {
  const fail = (message: string, cause?: unknown) =>
    new KilnError('invalid-argument', `${path}: ${message}`, cause === undefined ? undefined : { cause });
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw fail(`cannot read the job file: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, e);
  }
  let spec: unknown;
  try {
    spec = JSON.parse(text);
  } catch (e) {
    throw fail(`not JSON: ${(e as Error).message}`, e);
  }
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec))
    throw fail('a job file holds one JSON object');
  const o = spec as Record<string, unknown>;
  const here = dirname(resolve(path));
  const at = (p: unknown) => (typeof p === 'string' && !isAbsolute(p) ? resolve(here, p) : p);
  if (typeof o.graph !== 'string') throw fail("'graph' must be the path of a graph file (saveGraphFile)");
  let graph: Uint8Array;
  try {
    graph = new Uint8Array(await readFile(at(o.graph) as string));
  } catch (e) {
    throw fail(
      `graph: cannot read ${String(at(o.graph))}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      e,
    );
  }
  const dataset = (d: unknown) => {
    if (typeof d !== 'object' || d === null) return d;
    const ref = d as Record<string, unknown>;
    const files = Array.isArray(ref.files) ? ref.files.map(at) : at(ref.files);
    return { ...ref, files };
  };
  const evaluate = o.evaluate as Record<string, unknown> | undefined;
  const checkpoint = o.checkpoint as Record<string, unknown> | undefined;
  return {
    ...o,
    graph,
    ...(o.dataset !== undefined ? { dataset: dataset(o.dataset) } : {}),
    ...(evaluate && typeof evaluate === 'object'
      ? { evaluate: { ...evaluate, dataset: dataset(evaluate.dataset) } }
      : {}),
    ...(checkpoint && typeof checkpoint === 'object'
      ? { checkpoint: { ...checkpoint, dir: at(checkpoint.dir) } }
      : {}),
  };
}
