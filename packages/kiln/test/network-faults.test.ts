import { Prng } from 'kiln-tensor';
import { connectJobs, type JobEvent, JobsCoordinator } from 'kiln-tensor/jobs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cutFrom, delayedLink, dropAll, lossy, slow } from './faults.js';
import { type Hosts, hosts } from './netns.js';
import { expectSameWeights, logsOf, type RecoveryFixture, recoveryFixture, until } from './recovery-jobs.js';
import { killAll, startWorker, type WorkerChild } from './worker-processes.js';

/**
 * Training jobs on `kiln worker` processes on hosts of their own (network namespaces joined by
 * veth pairs), meeting the faults of a real network, injected from outside with nftables and tc:
 * a host whose every packet is dropped, a host cut off from the coordinator alone (its peers still
 * reach it), a lossy link, a slow one, and a seeded schedule of all of these and SIGKILLs. Each
 * job ends with weights bit-identical to the same job run without faults.
 */
const TOKEN = 'network-faults-test';
let fixture: RecoveryFixture | undefined;
let net: Hosts | string | undefined;
let coordinator: JobsCoordinator | undefined;
const undo: (() => void)[] = [];

beforeAll(async () => {
  fixture = await recoveryFixture('kiln-network-faults-');
});

afterEach(async () => {
  for (const u of undo.splice(0).reverse()) u();
  await coordinator?.close();
  coordinator = undefined;
  await killAll();
  if (net && typeof net !== 'string') net.teardown();
  net = undefined;
});

afterAll(async () => {
  await fixture?.remove();
});

type Host = Hosts['workers'][number];

/**
 * A coordinator on the bridge for `workers` workers, each on a host of its own, and `spares` more
 * waiting on hosts of their own. Returns the hosts, which worker each serves, and the spares.
 */
async function cluster(workers: number, spares: number, via?: (i: number, url: string) => Promise<string>) {
  const made = hosts(workers + spares);
  net = made;
  if (typeof made === 'string') return made;
  const byName = new Map<string, { host: Host; child: WorkerChild }>();
  const started: { host: Host; child: WorkerChild }[] = [];
  const c = await JobsCoordinator.listen(
    { workers, host: made.coordinator, token: TOKEN, store: ':memory:', log: () => {} },
    async (url) => {
      for (const [i, host] of made.workers.slice(0, workers).entries())
        started.push({ host, child: startWorker(via ? await via(i, url) : url, TOKEN, [], host.namespace) });
    },
  );
  coordinator = c;
  for (const s of started) byName.set(await s.child.ready, s);
  const waiting = made.workers
    .slice(workers)
    .map((host) => ({ host, child: startWorker(c.url, TOKEN, [], host.namespace) }));
  await until(() => c.cluster.spares === spares, `${spares} spares to connect`);
  // A spare that takes a lost worker's place serves its name from then on.
  for (const s of waiting) void s.child.ready.then((name) => byName.set(name, s)).catch(() => undefined);
  return { c, hosts: made, byName };
}

/** Whether the event says the job has ended. */
const ended = (e: JobEvent) => e.type === 'state' && e.state !== 'PENDING' && e.state !== 'RUNNING';

/** Follows a job's events until `ok` says stop (or the job ends). */
async function follow(events: AsyncIterable<JobEvent>, ok: (e: JobEvent) => boolean): Promise<void> {
  for await (const e of events) if (ok(e) || ended(e)) return;
}

describe('network faults between hosts', () => {
  type Made = Exclude<Awaited<ReturnType<typeof cluster>>, string>;
  it.for([
    {
      what: 'whose packets are all dropped',
      name: 'dropped',
      parallelism: { kind: 'none', workers: 1 },
      victim: 'worker:0',
      fault: (_: Made, host: Host) => dropAll(host.namespace),
    },
    {
      // Its peers still reach it: only its link to the coordinator is cut.
      what: 'cut off from the coordinator alone',
      name: 'partitioned',
      parallelism: { kind: 'data', workers: 2 },
      victim: 'worker:1',
      fault: (made: Made, host: Host) => cutFrom(host.namespace, made.hosts.coordinator),
    },
  ])(
    'replaces a worker $what, detected by its missed heartbeats',
    { timeout: 180_000 },
    async (t, context) => {
      const made = await cluster(t.parallelism.workers, 1);
      if (typeof made === 'string') {
        console.log(`network-fault test: ${made}`);
        return context.skip();
      }
      // A job of one worker runs with parallelism 'none'; the spec has no worker count then.
      const parallelism = t.parallelism.kind === 'none' ? { kind: 'none' } : t.parallelism;
      const jobs = await connectJobs(made.c.url, { token: TOKEN });
      try {
        const faulty = await jobs.submit(fixture!.spec(t.name, parallelism));
        await follow(faulty.events(), (e) => e.type === 'progress' && e.step >= 100);
        undo.push(t.fault(made, made.byName.get(t.victim)!.host));
        const result = await faulty.result();
        expect(result.steps).toBe(1500);
        const logs = await logsOf(faulty);
        expect(logs.find((l) => /replaced after/.test(l)) ?? logs.join('\n')).toMatch(
          new RegExp(
            `${t.victim}.*answered no heartbeat for 1500 ms \\(heartbeatMillis 500 x 3\\).*${t.victim} replaced after \\d+ ms`,
          ),
        );
        const clean = await (await jobs.submit(fixture!.spec(`${t.name}-clean`, parallelism))).result();
        await expectSameWeights(result.checkpoint!, clean.checkpoint!);
      } finally {
        await jobs.close();
      }
    },
  );

  it('trains through 5% packet loss on one worker link, both ways (data-parallel)', async (context) => {
    const made = await cluster(2, 1);
    if (typeof made === 'string') {
      console.log(`network-fault test: ${made}`);
      return context.skip();
    }
    const jobs = await connectJobs(made.c.url, { token: TOKEN });
    const parallelism = { kind: 'data', workers: 2 };
    try {
      undo.push(lossy(made.byName.get('worker:1')!.host.namespace, 5));
      // TCP retransmits what is lost; should a run of losses outlast the heartbeats, the spare
      // takes over and the job recovers. Either way it ends where the clean run does.
      const lossyRun = await (await jobs.submit(fixture!.spec('lossy', parallelism, 500))).result();
      expect(lossyRun.steps).toBe(500);
      for (const u of undo.splice(0).reverse()) u();
      const clean = await (await jobs.submit(fixture!.spec('lossy-clean', parallelism, 500))).result();
      await expectSameWeights(lossyRun.checkpoint!, clean.checkpoint!);
    } finally {
      await jobs.close();
    }
  }, 180_000);

  it('trains through 100 ms of delay each way and 5% loss on one worker link (data-parallel)', async (context) => {
    // The last worker reaches the coordinator through a relay that holds everything 100 ms each
    // way, and its host loses 5% of its packets, its peer traffic included.
    let relay: Awaited<ReturnType<typeof delayedLink>> | undefined;
    const made = await cluster(2, 0, async (i, url) => {
      if (i < 1) return url;
      const target = new URL(url);
      relay = await delayedLink(target.hostname, { host: target.hostname, port: Number(target.port) }, 100);
      undo.push(() => relay?.close());
      return `ws://${target.hostname}:${relay.port}`;
    });
    if (typeof made === 'string') {
      console.log(`network-fault test: ${made}`);
      return context.skip();
    }
    const healLoss = lossy(made.hosts.workers[1]!.namespace, 5);
    const parallelism = { kind: 'data', workers: 2 };
    const jobs = await connectJobs(made.c.url, { token: TOKEN });
    try {
      const started = performance.now();
      const far = await (await jobs.submit(fixture!.spec('far', parallelism, 40))).result();
      expect(far.steps).toBe(40);
      // Every step crossed the delayed link: 40 steps took at least 40 round trips of 200 ms.
      expect(performance.now() - started).toBeGreaterThan(40 * 200);
      // The same link without the fault: no delay, no loss.
      relay!.millis = 0;
      healLoss();
      const near = await (await jobs.submit(fixture!.spec('near', parallelism, 40))).result();
      await expectSameWeights(far.checkpoint!, near.checkpoint!);
    } finally {
      await jobs.close();
    }
  }, 180_000);

  it('survives a seeded chaos schedule of kills, dropped hosts, partitions, loss and slow links over a 300-step job on 3 workers', async (context) => {
    // Three workers and two spares, each on a host of its own; fixed micro-batches, so when the
    // spares are spent the job goes on with the workers it has left.
    const made = await cluster(3, 2);
    if (typeof made === 'string') {
      console.log(`chaos soak: ${made}`);
      return context.skip();
    }
    const SEED = 20261204;
    const rng = new Prng(SEED);
    const kinds = ['kill', 'drop', 'partition', 'loss', 'slow'] as const;
    const losing = new Set(['kill', 'drop', 'partition']);
    // Five faults at steps spread over the first two thirds of the job (progress comes every
    // 0.5 s, some tens of steps apart here: the last third is the margin that lets each fault land
    // while the job still runs); at most three lose a worker (two spares, then one shrink keeps two
    // of three workers).
    let lost = 0;
    const schedule = [20, 60, 100, 140, 180]
      .map((at) => at + Math.floor(rng.next() * 20))
      .map((at) => {
        let kind = kinds[Math.floor(rng.next() * kinds.length)]!;
        if (losing.has(kind) && lost === 3) kind = rng.next() < 0.5 ? 'loss' : 'slow';
        if (losing.has(kind)) lost++;
        return { at, kind, pick: rng.next() };
      });
    const parallelism = { kind: 'data', workers: 3, microBatches: 6 };
    const chaosSpec = (name: string) => ({
      ...fixture!.spec(name, parallelism, 300),
      recovery: { commitEvery: 10, retries: 10, replaceTimeoutMillis: 2000 },
    });
    const jobs = await connectJobs(made.c.url, { token: TOKEN });
    const report: { step: number; kind: string; worker: string; recoveredMillis: number | null }[] = [];
    let chaosCheckpoint = '';
    try {
      const job = await jobs.submit(chaosSpec('chaos'));
      const events = job.events()[Symbol.asyncIterator]();
      let recoveries = 0;
      // Workers the job may still be running on: a lost one leaves (its spare, if any, comes back).
      const alive = new Set(['worker:0', 'worker:1', 'worker:2']);
      for (const fault of schedule) {
        // Until the job passes the fault's step.
        for (;;) {
          const next = await events.next();
          if (next.done) throw new Error(`the job ended before the fault at step ${fault.at}`);
          const e = next.value;
          if (ended(e)) throw new Error('the job ended before all its faults');
          if (e.type === 'progress' && e.step >= fault.at) break;
        }
        const names = [...alive].sort();
        const worker = names[Math.floor(fault.pick * names.length)]!;
        const { host, child } = made.byName.get(worker)!;
        const injected = performance.now();
        if (fault.kind === 'kill') child.process.kill('SIGKILL');
        else if (fault.kind === 'drop') undo.push(dropAll(host.namespace));
        else if (fault.kind === 'partition') undo.push(cutFrom(host.namespace, made.hosts.coordinator));
        else if (fault.kind === 'loss') undo.push(lossy(host.namespace, 5));
        else undo.push(slow(host.cable, 2));
        let recoveredMillis: number | null = null;
        if (losing.has(fault.kind)) {
          // Until the job says it recovered: detected, replaced or gone on without it, restored.
          for (;;) {
            const next = await events.next();
            if (next.done) throw new Error(`the job ended while recovering from ${fault.kind} of ${worker}`);
            const e = next.value;
            if (ended(e)) throw new Error(`the job ended while recovering from ${fault.kind} of ${worker}`);
            if (e.type === 'log' && /\(recovery \d+ of 10\)/.test(e.message)) {
              recoveredMillis = Math.round(performance.now() - injected);
              recoveries++;
              if (/going on with/.test(e.message)) alive.delete(worker);
              // A spare took its name: the next fault may pick it, so wait to know its host.
              else await until(() => made.byName.get(worker)!.child !== child, `the spare serving ${worker}`);
              break;
            }
          }
        }
        report.push({ step: fault.at, kind: fault.kind, worker, recoveredMillis });
      }
      const result = await job.result();
      expect(result.steps).toBe(300);
      chaosCheckpoint = result.checkpoint!;
      expect(recoveries).toBe(lost);
      for (const u of undo.splice(0).reverse()) u();
      console.log(
        `chaos soak (seed ${SEED}), faults injected and the time from each to the job's recovery:\n${report
          .map(
            (r) =>
              `  step ${r.step}: ${r.kind} ${r.worker}${r.recoveredMillis === null ? ' (trained through it)' : `: recovered ${r.recoveredMillis} ms later`}`,
          )
          .join('\n')}`,
      );
    } finally {
      await jobs.close();
    }
    // The run without faults, on three workers of a fresh cluster.
    await coordinator?.close();
    coordinator = undefined;
    await killAll();
    if (net && typeof net !== 'string') net.teardown();
    const calm = await cluster(3, 0);
    if (typeof calm === 'string') throw new Error(calm);
    const again = await connectJobs(calm.c.url, { token: TOKEN });
    try {
      const clean = await (await again.submit(chaosSpec('chaos-clean'))).result();
      await expectSameWeights(chaosCheckpoint, clean.checkpoint!);
    } finally {
      await again.close();
    }
  }, 300_000);
});
