import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jobsLoad } from '../src/jobs-load.js';
import { startLocalCoordinator, startLocalWorkers } from '../src/workers.js';

/**
 * 100 jobs submitted at once by 10 clients to a coordinator process with 2 worker processes:
 * every job is stored once, runs once, ends SUCCEEDED, and jobs start in the order they were
 * stored. (The speed of it is the jobs benchmark's: `npm run bench -w examples/cluster`.)
 */
const TOKEN = 'jobs-load';
let coordinator: Awaited<ReturnType<typeof startLocalCoordinator>>;
let url: string;

beforeAll(async () => {
  coordinator = await startLocalCoordinator(TOKEN, 2);
  url = coordinator.url;
  const workers = startLocalWorkers(url, TOKEN, 2);
  afterAll(() => {
    for (const w of workers) w.kill('SIGKILL');
  });
  await coordinator.ready;
});
afterAll(() => {
  coordinator?.process.kill('SIGKILL');
});

describe('jobs under load', () => {
  it('runs 100 jobs from 10 clients, each once, none lost, started in order', async () => {
    const result = await jobsLoad(url, TOKEN, { clients: 10, perClient: 10 });
    expect(result.jobs).toHaveLength(100);
    expect(new Set(result.jobs.map((j) => j.submissionId)).size).toBe(100);
    for (const job of result.jobs) {
      expect(job.state, `job ${job.id}`).toBe('SUCCEEDED');
      expect(result.states.get(job.id), `job ${job.id}`).toEqual(['PENDING', 'RUNNING', 'SUCCEEDED']);
    }
    // FIFO: with jobs of one size, each starts no earlier than the one stored before it.
    const started = result.jobs.map((j) => j.startedAt!);
    for (let i = 1; i < started.length; i++) expect(started[i]).toBeGreaterThanOrEqual(started[i - 1]!);
    // Both workers took jobs.
    expect(new Set(result.jobs.map((j) => j.workers[0])).size).toBe(2);
  }, 300_000);
});
