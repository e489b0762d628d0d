import { mkdirSync, writeFileSync } from 'node:fs';
import { connectJobs } from 'kiln-tensor/jobs';
import { Bench } from 'tinybench';
import { jobsLoad, submitToRunning, tinyJob } from '../src/jobs-load.js';
import { startLocalCoordinator, startLocalWorkers } from '../src/workers.js';
import { machine } from './machine.js';

/**
 * Jobs on a standalone coordinator with 2 worker processes, all on this machine's loopback:
 *   1. the load: 100 small training jobs (5 steps each) submitted at once by 10 clients;
 *      jobs per minute from the first submit to the last end, over 3 rounds (median);
 *   2. submit to RUNNING for a job that fits at once (an idle cluster), in a client: tinybench,
 *      median of 30.
 * Prints tables and writes bench-results/jobs.json, with the CPU model and its vector extensions.
 */
const TOKEN = 'bench';
const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const { cpu, cores, vector } = machine();
console.log(`jobs benchmarks on ${cpu} (${cores} cores; ${vector}), Node ${process.version}`);

const coordinator = await startLocalCoordinator(TOKEN, 2);
startLocalWorkers(coordinator.url, TOKEN, 2);
await coordinator.ready;

const rounds = [];
for (let round = 0; round < 3; round++) {
  const r = await jobsLoad(coordinator.url, TOKEN, { clients: 10, perClient: 10, tag: `round${round}` });
  const succeeded = r.jobs.filter((j) => j.state === 'SUCCEEDED').length;
  rounds.push({ round, jobs: r.jobs.length, succeeded, seconds: r.seconds, jobsPerMinute: r.jobsPerMinute });
}
console.table(
  rounds.map((r) => ({
    round: r.round,
    jobs: r.jobs,
    SUCCEEDED: r.succeeded,
    seconds: r.seconds.toFixed(2),
    'jobs per minute': Math.round(r.jobsPerMinute),
  })),
);

const jobs = await connectJobs(coordinator.url, { token: TOKEN, log: () => {} });
const job = tinyJob();
const bench = new Bench({
  iterations: 30,
  warmupIterations: 3,
  time: 0,
  warmupTime: 0,
  retainSamples: true,
  throws: true,
});
const latencies: number[] = [];
bench.add('submit to RUNNING', async () => {
  latencies.push(await submitToRunning(jobs, job.spec('latency')));
});
await bench.run();
await jobs.close();
job.remove();
const measured = latencies.slice(3);
const toRunning = {
  medianMs: median(measured),
  p90Ms: [...measured].sort((a, b) => a - b)[Math.floor(measured.length * 0.9)]!,
};
console.table([
  {
    measure: 'submit to RUNNING, idle cluster',
    'median ms': toRunning.medianMs.toFixed(2),
    'p90 ms': toRunning.p90Ms.toFixed(2),
  },
]);
const load = { medianJobsPerMinute: median(rounds.map((r) => r.jobsPerMinute)) };
console.log(
  `load: median ${Math.round(load.medianJobsPerMinute)} jobs per minute (100 jobs, 10 clients, 2 workers)`,
);

mkdirSync(new URL('../bench-results/', import.meta.url), { recursive: true });
writeFileSync(
  new URL('../bench-results/jobs.json', import.meta.url),
  JSON.stringify({ cpu, vector, cores, node: process.version, rounds, load, toRunning }, null, 2),
);
process.exit(0);
