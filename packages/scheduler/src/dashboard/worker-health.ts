import type { Cluster } from '../cluster/cluster.js';
import type { StoryEntry } from '../cluster/story.js';

/** How a worker is, as far as the coordinator knows. */
export interface WorkerHealth {
  /** Up since it last joined; false after it exited until its replacement joins. */
  readonly up: boolean;
  /** How many times a worker of this name started: above 1, it was replaced. */
  readonly generation: number;
  /** The coordinator's latest word on its membership ("worker:1 exited: ..."). */
  readonly note: string | null;
  /** When that was, in milliseconds since the epoch. */
  readonly since: number | null;
}

/**
 * A worker's health from the coordinator's story. The Cluster interface tells generations but not
 * liveness; the story does: its membership entries (a worker joined, a worker exited) are kept
 * apart from routine ones, so the latest of them is there however long the cluster has run.
 */
export async function workerHealth(cluster: Cluster, worker: string): Promise<WorkerHealth> {
  const latest = lastMembership(await cluster.story(worker), worker);
  return {
    // A worker that started and has no exit on record is up; names take a generation as they start.
    up: latest ? latest.joined : cluster.generation(worker) > 0,
    generation: cluster.generation(worker),
    note: latest?.entry.event ?? null,
    since: latest?.entry.at ?? null,
  };
}

/** The latest entry that says `worker` joined or exited, and which of the two. */
export function lastMembership(
  entries: readonly StoryEntry[],
  worker: string,
): { readonly joined: boolean; readonly entry: StoryEntry } | undefined {
  for (let i = entries.length - 1; i >= 0; i--) {
    const entry = entries[i]!;
    if (entry.event.startsWith(`${worker} joined`)) return { joined: true, entry };
    if (entry.event.startsWith(`${worker} exited`)) return { joined: false, entry };
  }
  return undefined;
}
