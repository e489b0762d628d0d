import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mlpForward } from '@kiln/example-mnist/models';
import { HostTensor, Prng } from 'kiln-tensor';
import { connectJobs, JobsCoordinator, writeSafetensors } from 'kiln-tensor/jobs';
import { startLocalWorkers } from '../src/workers.js';
import { machine } from './machine.js';

/**
 * What recovery costs, with worker processes on this machine's loopback (`kiln worker`, the CPU
 * device) and the MNIST MLP (784-256-256-10, Adam, batch 32) as the job:
 *   1. the steady-state cost of commits: seconds per step without recovery (no commits), with
 *      the default commit every 100 steps, and every 10 (median of 3 jobs each);
 *   2. a worker killed with SIGKILL mid-job, 3 times: detection (kill to the failed step),
 *      recovery (the spare's takeover and the commit restored on the workers) and the steps
 *      replayed, from the job's own log;
 *   3. the same for a worker frozen with SIGSTOP (a machine that hangs: alive, its socket open,
 *      silent), which only missed heartbeats reveal (3 x 500 ms by default). A silent network
 *      (packets dropped between hosts) is tested in packages/kiln/test/network-faults.test.ts.
 * Prints tables and writes bench-results/recovery.json with the CPU model.
 */
const TOKEN = 'bench';
const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const host = machine();
const cpu = `${host.cpu} (${host.cores} cores; ${host.vector})`;
console.log(`recovery benchmarks on ${cpu}, Node ${process.version}`);

const dir = mkdtempSync(join(tmpdir(), 'kiln-recovery-bench-'));
const data = join(dir, 'data.safetensors');
const rng = new Prng(3);
const rows = 2048;
writeSafetensors(data, {
  x: new HostTensor(
    'float32',
    [rows, 784],
    Float32Array.from({ length: rows * 784 }, () => rng.next()),
  ),
  y: new HostTensor(
    'float32',
    [rows, 10],
    Float32Array.from({ length: rows * 10 }, (_, i) => (i % 10 === 3 ? 1 : 0)),
  ),
});
const forward = mlpForward();
const spec = (name: string, steps: number, recovery: object) => ({
  name,
  graph: forward.graph,
  loss: 'loss',
  optimizer: { kind: 'adam', learningRate: 1e-3 },
  dataset: { files: [data], feeds: { x: 'x', y: 'y' } },
  loop: { steps, batchSize: 32, seed: 1 },
  recovery,
});

// The process serving worker:0 now: the first, then each spare that took its place.
let serving: ChildProcess | undefined;
const coordinator = await JobsCoordinator.listen(
  { workers: 1, token: TOKEN, store: ':memory:', log: () => {} },
  (url) => {
    [serving] = startLocalWorkers(url, TOKEN, 1);
  },
);
const jobs = await connectJobs(coordinator.url, { token: TOKEN });

// ---- 1. the steady-state cost of commits
const STEPS = 300;
const steady = [];
for (const [setting, recovery] of [
  ['no recovery (no commits)', { retries: 0 }],
  ['commit every 100 steps (default)', {}],
  ['commit every 10 steps', { commitEvery: 10 }],
] as const) {
  const seconds = [];
  for (let i = 0; i < 3; i++)
    seconds.push((await (await jobs.submit(spec(`steady ${i}`, STEPS, recovery))).result()).seconds);
  steady.push({ setting, msPerStep: (median(seconds) / STEPS) * 1000 });
}
const base = steady[0]!.msPerStep;
console.table(
  steady.map((s) => ({
    setting: s.setting,
    'ms per step': s.msPerStep.toFixed(2),
    'vs no commits': `${((s.msPerStep / base - 1) * 100).toFixed(1)}%`,
  })),
);

// ---- 2. a worker killed with SIGKILL, and 3. one frozen (SIGSTOP: alive, silent, its socket open)
async function lose(signal: 'SIGKILL' | 'SIGSTOP') {
  const rounds = [];
  for (let round = 0; round < 3; round++) {
    const [spare] = startLocalWorkers(coordinator.url, TOKEN, 1);
    while (coordinator.cluster.spares < 1) await new Promise((r) => setTimeout(r, 20));
    const job = await jobs.submit(spec(`${signal} ${round}`, 600, {}));
    let lostAt = 0;
    const victim = serving!;
    for await (const e of job.events())
      if (e.type === 'progress' && e.step >= 150) {
        lostAt = Date.now();
        victim.kill(signal);
        break;
      }
    await job.result();
    // A frozen worker is ended once it has been replaced (nothing else would wake it).
    victim.kill('SIGKILL');
    for await (const e of job.events()) {
      const m =
        e.type === 'log'
          ? /replaced after (\d+) ms; restored the commit of step (\d+) and replaying (\d+)/.exec(e.message)
          : null;
      if (m) {
        const recoverMs = Number(m[1]);
        rounds.push({ round, detectMs: e.at - recoverMs - lostAt, recoverMs, replayed: Number(m[3]) });
        break;
      }
    }
    serving = spare;
  }
  console.log(
    signal === 'SIGKILL'
      ? 'a worker killed (SIGKILL):'
      : 'a worker frozen (SIGSTOP), found by missed heartbeats:',
  );
  console.table(
    rounds.map((k) => ({
      round: k.round,
      'detected after (ms)': k.detectMs,
      'replaced and restored (ms)': k.recoverMs,
      'steps replayed': k.replayed,
      'replay (ms)': Math.round(k.replayed * base),
    })),
  );
  return rounds;
}
const kills = await lose('SIGKILL');
const freezes = await lose('SIGSTOP');

await jobs.close();
await coordinator.close();
rmSync(dir, { recursive: true, force: true });
mkdirSync(new URL('../bench-results/', import.meta.url), { recursive: true });
writeFileSync(
  new URL('../bench-results/recovery.json', import.meta.url),
  JSON.stringify({ cpu, node: process.version, steady, kills, freezes }, null, 2),
);
process.exit(0);
