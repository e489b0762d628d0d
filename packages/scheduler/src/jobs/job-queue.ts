/** A job waiting for workers, as the queue sees it. */
export interface QueuedJob {
  readonly id: string;
  readonly device: string;
  readonly count: number;
  /** Workers the job needs by name (its graph's device scopes), if any. */
  readonly named?: readonly string[];
}

/**
 * Which waiting jobs start now: in submission order, each job that fits on the free workers
 * takes them (so a small job behind a large one that waits does not wait with it). Pure, so its
 * decisions are tested without a cluster.
 */
export function jobsToStart(
  queue: readonly QueuedJob[],
  workers: ReadonlyMap<string, string>,
  busy: ReadonlySet<string>,
): { id: string; workers: string[] }[] {
  const taken = new Set(busy);
  const starts: { id: string; workers: string[] }[] = [];
  for (const job of queue) {
    const free = [...workers]
      .filter(([name, kind]) => kind === job.device && !taken.has(name))
      .map(([name]) => name);
    const chosen = job.named
      ? job.named.every((n) => free.includes(n))
        ? [...job.named]
        : undefined
      : free.length >= job.count
        ? free.slice(0, job.count)
        : undefined;
    if (!chosen) continue;
    for (const w of chosen) taken.add(w);
    starts.push({ id: job.id, workers: chosen });
  }
  return starts;
}

/** Why a job can never run on these workers, or undefined when it can once they are free. */
export function neverFits(
  job: Omit<QueuedJob, 'id'>,
  workers: ReadonlyMap<string, string>,
): string | undefined {
  const ofKind = [...workers].filter(([, kind]) => kind === job.device).map(([name]) => name);
  const kinds = [...new Set(workers.values())].join(', ') || 'none';
  if (ofKind.length === 0) return `no worker serves device '${job.device}' (the workers serve: ${kinds})`;
  if (job.named) {
    const missing = job.named.filter((n) => !ofKind.includes(n));
    if (missing.length)
      return `its graph places work on ${missing.join(', ')}, which ${missing.length === 1 ? 'is' : 'are'} not a '${job.device}' worker of this cluster (it has ${ofKind.join(', ')})`;
    return undefined;
  }
  if (job.count > ofKind.length)
    return `it needs ${job.count} '${job.device}' workers and the cluster has ${ofKind.length}`;
  return undefined;
}
