import type { Cluster } from '../cluster/cluster.js';
import type { JobInfo } from '../jobs/job-events.js';

/** Where a job's work went: the workers it holds, and what the coordinator placed on each. */
export interface Placement {
  readonly workers: readonly {
    readonly worker: string;
    readonly device: string;
    /** The placement decisions about this worker: partitions put on it, variables living there. */
    readonly decisions: readonly string[];
  }[];
  /** The job's placement entries from the coordinator's story, as printed lines. */
  readonly story: readonly {
    readonly at: number;
    readonly event: string;
    readonly decisions: readonly string[];
  }[];
}

/** How many placement entries a job shows: a job places its plan once, replanning after a failure. */
const PLACEMENT_ENTRIES = 20;

/**
 * A job's placement, from the coordinator's story. A job's variables are named `job<id>/...` (the
 * runner scopes them so jobs sharing a cluster never share weights), and every placement records
 * its variables as subjects: the entries with such a subject are this job's plans. A job without
 * variables (a `run` of a stateless graph) shows its workers only.
 */
export async function jobPlacement(
  cluster: Cluster,
  job: JobInfo,
  devices: ReadonlyMap<string, string>,
): Promise<Placement> {
  const scope = `job${job.id}/`;
  const entries = job.workers.length === 0 ? [] : await cluster.story(...job.workers);
  const own = entries.filter((e) => e.subjects.some((s) => s.startsWith(scope))).slice(-PLACEMENT_ENTRIES);
  return {
    workers: job.workers.map((worker) => ({
      worker,
      device: devices.get(worker) ?? '?',
      decisions: own.flatMap((e) => e.decisions.filter((d) => placesOn(d, worker))),
    })),
    story: own.map((e) => ({ at: e.at, event: e.event, decisions: e.decisions })),
  };
}

/**
 * Whether a placement decision puts something on `worker`: the coordinator writes "<partition> on
 * <worker>: ..." and "variable '<name>' lives on <worker> (...)". Reasons may name other workers
 * ("hint worker:1"), and `worker:1` must not match `worker:10`, hence the words around the name.
 */
export function placesOn(line: string, worker: string): boolean {
  const mark = ` on ${worker}`;
  for (let at = line.indexOf(mark); at >= 0; at = line.indexOf(mark, at + 1)) {
    const after = line[at + mark.length];
    if (after === undefined || /[\s:;,)]/.test(after)) return true;
  }
  return false;
}
