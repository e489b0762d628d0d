import { execFileSync } from 'node:child_process';
import { type AddressInfo, createServer } from 'node:net';
import { join } from 'node:path';
import { connectJobs, JobsCoordinator } from 'kiln-tensor/jobs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Hosts, hosts } from './netns.js';
import { expectSameWeights, logsOf, type RecoveryFixture, recoveryFixture, until } from './recovery-jobs.js';
import { killAll, startCoordinator, startWorker, type WorkerChild } from './worker-processes.js';

/**
 * Training jobs on `kiln worker` processes, one of which is killed with SIGKILL mid-training from
 * outside, as a lost machine: the job commits its state every few steps, sees the step fail, waits
 * for a spare worker to take the dead one's place, restores the last commit and replays, and ends
 * with weights bit-identical to the same job run without the fault. On one worker, and
 * data-parallel over three.
 */
const TOKEN = 'job-recovery-test';
let fixture: RecoveryFixture | undefined;
let dir: string;
const spec = (name: string, parallelism: object) => fixture!.spec(name, parallelism);
let coordinator: JobsCoordinator | undefined;

beforeAll(async () => {
  fixture = await recoveryFixture('kiln-job-recovery-');
  dir = fixture.dir;
});

let net: Hosts | string | undefined;

afterEach(async () => {
  await coordinator?.close();
  coordinator = undefined;
  await killAll();
  if (net && typeof net !== 'string') net.teardown();
  net = undefined;
});

afterAll(async () => {
  await fixture?.remove();
});

describe('a job that loses a worker', () => {
  for (const { workers, parallelism } of [
    { workers: 1, parallelism: { kind: 'none' } },
    { workers: 3, parallelism: { kind: 'data', workers: 3 } },
  ]) {
    it(`recovers on a spare and ends with the weights of a run without the fault (${workers} worker${workers > 1 ? 's, data-parallel' : ''})`, async () => {
      const children: WorkerChild[] = [];
      const c = await JobsCoordinator.listen(
        { workers, token: TOKEN, store: ':memory:', log: () => {} },
        (url) => {
          for (let i = 0; i < workers; i++) children.push(startWorker(url, TOKEN));
        },
      );
      coordinator = c;
      const spare = startWorker(c.url, TOKEN);
      await until(() => c.cluster.spares === 1, 'the spare to connect');
      // The victim serves the last worker, which every step of the job uses.
      const names = await Promise.all(children.map((w) => w.ready));
      const victimName = `worker:${workers - 1}`;
      const victim = children[names.indexOf(victimName)]!;
      const jobs = await connectJobs(c.url, { token: TOKEN });
      try {
        const faulty = await jobs.submit(spec(`faulty-${workers}`, parallelism));
        // Killed from outside once the job is well past its first commits.
        for await (const e of faulty.events())
          if (e.type === 'progress' && e.step >= 100) {
            victim.process.kill('SIGKILL');
            break;
          }
        const recovered = await faulty.result();
        expect(recovered.steps).toBe(1500);
        expect(await spare.ready).toBe(victimName);
        const logs = await logsOf(faulty);
        expect(
          logs.find((l) => /replaced after/.test(l)),
          logs.join('\n'),
        ).toMatch(
          new RegExp(
            `step \\d+ failed: .*${victimName}.*; ${victimName} replaced after \\d+ ms; restored the commit of step \\d+ and replaying \\d+ steps? \\(recovery 1 of 3\\)`,
          ),
        );

        const clean = await (await jobs.submit(spec(`clean-${workers}`, parallelism))).result();
        const a = await expectSameWeights(recovered.checkpoint!, clean.checkpoint!);
        // And training did something: the weights moved from where they started.
        expect(Array.from(a.variables.w2!.data)).not.toEqual([0.5, -0.4]);
      } finally {
        await jobs.close();
      }
    }, 180_000);
  }

  it('goes on with the workers it has left when no spare comes, and still ends with the weights of a run without the fault (fixed micro-batches)', async () => {
    const children: WorkerChild[] = [];
    const c = await JobsCoordinator.listen(
      { workers: 3, token: TOKEN, store: ':memory:', log: () => {} },
      (url) => {
        for (let i = 0; i < 3; i++) children.push(startWorker(url, TOKEN));
      },
    );
    coordinator = c;
    const names = await Promise.all(children.map((w) => w.ready));
    // The middle worker: the fold runs through it, and the workers left are not a prefix.
    const victim = children[names.indexOf('worker:1')]!;
    const parallelism = { kind: 'data', workers: 3, microBatches: 6 };
    const shrinking = (name: string) => ({
      ...spec(name, parallelism),
      recovery: { commitEvery: 25, replaceTimeoutMillis: 1000 },
    });
    const jobs = await connectJobs(c.url, { token: TOKEN });
    try {
      const faulty = await jobs.submit(shrinking('shrink'));
      for await (const e of faulty.events())
        if (e.type === 'progress' && e.step >= 100) {
          victim.process.kill('SIGKILL');
          break;
        }
      const recovered = await faulty.result();
      expect(recovered.steps).toBe(1500);
      const logs = await logsOf(faulty);
      expect(
        logs.find((l) => /going on with/.test(l)),
        logs.join('\n'),
      ).toMatch(
        /step \d+ failed: .*worker:1.*; worker:1 not replaced within 1000 ms \(recovery\.replaceTimeoutMillis\); going on with worker:0, worker:2, the same micro-batches, the same arithmetic; restored the commit of step \d+ and replaying \d+ steps? \(recovery 1 of 3\)/,
      );
      // The run without the fault, on three workers again: a spare takes worker:1's place first.
      const spare = startWorker(c.url, TOKEN);
      expect(await spare.ready).toBe('worker:1');
      const clean = await (await jobs.submit(shrinking('shrink-clean'))).result();
      const a = await expectSameWeights(recovered.checkpoint!, clean.checkpoint!);
      expect(Array.from(a.variables.w2!.data)).not.toEqual([0.5, -0.4]);
    } finally {
      await jobs.close();
    }
  }, 180_000);

  it('replaces a worker cut off from the network (its cable pulled), detected by its missed heartbeats', async (context) => {
    net = hosts(2);
    if (typeof net === 'string') {
      console.log(`silent-link test: ${net}`);
      return context.skip();
    }
    const [victimHost, spareHost] = net.workers as [Hosts['workers'][number], Hosts['workers'][number]];
    let victim: WorkerChild | undefined;
    const c = await JobsCoordinator.listen(
      { workers: 1, host: net.coordinator, token: TOKEN, store: ':memory:', log: () => {} },
      (url) => {
        victim = startWorker(url, TOKEN, [], victimHost.namespace);
      },
    );
    coordinator = c;
    startWorker(c.url, TOKEN, [], spareHost.namespace);
    await until(() => c.cluster.spares === 1, 'the spare to connect');
    expect(await victim!.ready).toBe('worker:0');
    const jobs = await connectJobs(c.url, { token: TOKEN });
    try {
      const faulty = await jobs.submit(spec('silent', { kind: 'none' }));
      for await (const e of faulty.events())
        if (e.type === 'progress' && e.step >= 100) {
          // The victim's host is cut off, as by a pulled cable: nothing arrives from it, and
          // nothing says so (no reset, no close). The process lives on; only the missed
          // heartbeats can tell.
          execFileSync('ip', ['link', 'set', victimHost.cable, 'down']);
          break;
        }
      const recovered = await faulty.result();
      expect(recovered.steps).toBe(1500);
      const logs = await logsOf(faulty);
      const line = logs.find((l) => /replaced after/.test(l)) ?? logs.join('\n');
      expect(line).toMatch(
        /answered no heartbeat for 1500 ms \(heartbeatMillis 500 x 3\).*worker:0 replaced after \d+ ms/,
      );
      const clean = await (await jobs.submit(spec('silent-clean', { kind: 'none' }))).result();
      await expectSameWeights(recovered.checkpoint!, clean.checkpoint!);
    } finally {
      await jobs.close();
    }
  }, 180_000);

  it('resumes a running job from its commit on disk when the coordinator is killed and started again', async () => {
    // One port for both coordinators: the worker reconnects to the address it was given.
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as AddressInfo;
        probe.close(() => resolve(port));
      });
    });
    const store = join(dir, 'restart.sqlite');
    const args = ['--workers', '1', '--store', store, '--port', String(port)];
    const first = startCoordinator(TOKEN, args);
    const url = await first.listening;
    startWorker(url, TOKEN);
    await first.ready;
    const resumable = {
      ...spec('restart', { kind: 'none' }),
      checkpoint: { every: 50, dir: join(dir, 'restart') },
    };
    let jobs = await connectJobs(url, { token: TOKEN });
    const id = (await jobs.submit(resumable)).id;
    for await (const e of jobs.job(id).events())
      if (e.type === 'progress' && e.step >= 300) {
        first.process.kill('SIGKILL');
        break;
      }
    await first.exited;
    await jobs.close().catch(() => undefined);

    const second = startCoordinator(TOKEN, args);
    await second.listening;
    jobs = await connectJobs(url, { token: TOKEN });
    try {
      const resumed = await jobs.job(id).result();
      expect(resumed.steps).toBe(1500);
      const logs = await logsOf(jobs.job(id));
      expect(logs.join('\n')).toMatch(/queued again to resume from its commit .*job-1\.commit/);
      expect(logs.join('\n')).toMatch(/resumed from the commit of step (\d+)/);
      const clean = await (await jobs.submit({ ...resumable, name: 'restart-clean' })).result();
      await expectSameWeights(resumed.checkpoint!, clean.checkpoint!);
    } finally {
      await jobs.close();
    }
  }, 180_000);
});
