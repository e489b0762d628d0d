import { Prng } from '@kiln/ir';
import { describe, expect, it } from 'vitest';
import {
  type Instruction,
  MAX_HELD,
  type RunEvent,
  type RunFailure,
  RunScheduler,
  type ScheduledPartition,
} from '../src/cluster/run-scheduler.js';

// Tensors are opaque to the coordinator: strings that say which run and partition made them.
const result = (run: number, partition: string, k: number) => `r${run}/${partition}/${k}`;
const fed = (run: number, feed: string) => `r${run}/feed/${feed}`;

type Arg = ScheduledPartition['args'][number];
type Return = ScheduledPartition['returns'][number];

function part(
  key: string,
  worker: string,
  stage: number,
  o: {
    args?: readonly Arg[];
    returns?: readonly Return[];
    reads?: readonly string[];
    writes?: readonly string[];
  } = {},
): ScheduledPartition {
  return {
    key,
    worker,
    stage,
    args: o.args ?? [],
    returns: o.returns ?? [{ values: [], fetches: [] }],
    reads: o.reads ?? [],
    writes: o.writes ?? [],
  };
}

interface Dispatch {
  readonly worker: string;
  readonly run: number;
  readonly partition: string;
  readonly args: readonly string[];
  readonly seq: number;
}

/** Where a variable's value on a worker came from: the run whose partition assigned it. */
interface Staged {
  readonly run: number;
  readonly variable: string;
}

/**
 * A driver standing in for the shell and its workers: it feeds events to the coordinator, carries
 * out its instructions, and checks on every step what must hold whatever the order of events.
 *
 * It models each worker's variables as a worker keeps them: a partition's assigns are staged when
 * it finishes, a read sees the latest staged value (else the committed one), a commit makes a run's
 * staged values the committed ones and a release drops them. Commits and releases that reach a
 * busy worker wait behind the partition it runs, as messages on one connection do.
 */
class Sim {
  readonly coordinator: RunScheduler<string>;
  readonly byKey: Map<string, ScheduledPartition>;
  /** Per worker, what it is running now. */
  readonly inFlight = new Map<string, Dispatch>();
  readonly dispatches: Dispatch[] = [];
  readonly completed = new Map<number, readonly string[]>();
  readonly failed = new Map<number, RunFailure>();
  readonly replaced: string[] = [];
  readonly dead = new Set<string>();
  readonly submitted: number[] = [];
  /** Per worker: committed values by variable, and staged ones in staging order. */
  readonly committed = new Map<string, Map<string, number>>();
  readonly staged = new Map<string, Staged[]>();
  /** Commits and releases a busy worker handles after its partition. */
  private readonly queued = new Map<string, Instruction<string>[]>();
  /** Every variable read, with the run whose value it saw (null: none had assigned it). */
  readonly reads: { run: number; worker: string; variable: string; source: number | null }[] = [];
  /** `${worker}/${run}` for each commit sent. */
  readonly commits = new Set<string>();
  private readonly feeds = new Map<number, ReadonlyMap<string, string>>();
  /** Which partition return produces each value key. */
  private readonly producer = new Map<string, [string, number]>();
  /** Steps at which every live worker of the plan was busy. */
  saturated = 0;

  constructor(
    readonly partitions: readonly ScheduledPartition[],
    readonly fetchCount: number,
  ) {
    this.coordinator = new RunScheduler<string>(partitions, fetchCount);
    this.byKey = new Map(partitions.map((p) => [p.key, p]));
    for (const p of partitions)
      p.returns.forEach((r, k) => {
        for (const v of r.values) this.producer.set(v, [p.key, k]);
      });
  }

  get workers(): string[] {
    return [...new Set(this.partitions.map((p) => p.worker))].sort();
  }

  feedsFor(run: number): Map<string, string> {
    const names = new Set(
      this.partitions.flatMap((p) => p.args.flatMap((a) => ('feed' in a ? [a.feed] : []))),
    );
    return new Map([...names].map((n) => [n, fed(run, n)]));
  }

  terminated(run: number): boolean {
    return this.completed.has(run) || this.failed.has(run);
  }

  /** The fetches run `run` must produce, from the plan alone. */
  expectedFetches(run: number): string[] {
    const out: string[] = [];
    for (const p of this.partitions)
      p.returns.forEach((r, k) => {
        for (const f of r.fetches) out[f] = result(run, p.key, k);
      });
    return out;
  }

  submit(run: number, feeds: ReadonlyMap<string, string> = this.feedsFor(run)): Instruction<string>[] {
    return this.submitStep([run], feeds);
  }

  /** Runs that commit together: one step. */
  submitStep(runs: readonly number[], feeds?: ReadonlyMap<string, string>): Instruction<string>[] {
    for (const run of runs) {
      this.submitted.push(run);
      this.feeds.set(run, feeds ?? this.feedsFor(run));
    }
    return this.handle({ type: 'submit', runs: runs.map((run) => ({ run, feeds: this.feeds.get(run)! })) });
  }

  /** The worker finishes what it runs, returning results that name the run and partition. */
  finish(worker: string): Instruction<string>[] {
    const d = this.inFlight.get(worker);
    if (!d) throw new Error(`sim: ${worker} runs nothing`);
    this.inFlight.delete(worker);
    const p = this.byKey.get(d.partition)!;
    for (const variable of p.writes) this.stagedOn(worker).push({ run: d.run, variable });
    this.drain(worker);
    const results = p.returns.map((_, k) => result(d.run, d.partition, k));
    return this.handle({ type: 'done', worker, run: d.run, partition: d.partition, results });
  }

  failPartition(worker: string, code = 'kernel', message = 'boom'): Instruction<string>[] {
    const d = this.inFlight.get(worker);
    if (!d) throw new Error(`sim: ${worker} runs nothing`);
    this.inFlight.delete(worker);
    this.drain(worker);
    return this.handle({ type: 'failed', worker, run: d.run, partition: d.partition, code, message });
  }

  exit(worker: string, message = 'segfault'): Instruction<string>[] {
    this.inFlight.delete(worker);
    this.dead.add(worker);
    // Its variables, staged or not, went with it.
    this.committed.delete(worker);
    this.staged.delete(worker);
    this.queued.delete(worker);
    return this.handle({ type: 'exited', worker, message });
  }

  cancel(run: number, message = 'stop'): Instruction<string>[] {
    return this.handle({ type: 'cancel', run, message });
  }

  /** The shell's clock ran out for `run`: the workers it waited for are taken for hung. */
  timeout(run: number, millis = 1000): Instruction<string>[] {
    const out = this.handle({ type: 'timeout', run, millis });
    for (const i of out)
      if (i.type === 'replace-worker') {
        this.inFlight.delete(i.worker);
        this.dead.add(i.worker);
        this.committed.delete(i.worker);
        this.staged.delete(i.worker);
        this.queued.delete(i.worker);
      }
    return out;
  }

  private stagedOn(worker: string): Staged[] {
    const list = this.staged.get(worker) ?? [];
    this.staged.set(worker, list);
    return list;
  }

  /** What a read of `variable` on `worker` sees now: the latest staged value, else the committed. */
  private current(worker: string, variable: string): number | null {
    const staged = this.stagedOn(worker).filter((s) => s.variable === variable);
    return staged.at(-1)?.run ?? this.committed.get(worker)?.get(variable) ?? null;
  }

  /** A worker handles a commit or release (now if idle, else after its partition). */
  private deliver(i: Extract<Instruction<string>, { type: 'commit' | 'release' }>): void {
    expect(this.dead.has(i.worker), `${i.type} sent to dead ${i.worker}`).toBe(false);
    if (this.inFlight.has(i.worker)) {
      this.queued.set(i.worker, [...(this.queued.get(i.worker) ?? []), i]);
      return;
    }
    const list = this.stagedOn(i.worker);
    const mine = list.filter((s) => i.runs.includes(s.run));
    this.staged.set(
      i.worker,
      list.filter((s) => !i.runs.includes(s.run)),
    );
    if (i.type === 'release') return;
    const committed = this.committed.get(i.worker) ?? new Map<string, number>();
    for (const s of mine) committed.set(s.variable, s.run);
    this.committed.set(i.worker, committed);
  }

  private drain(worker: string): void {
    const queued = this.queued.get(worker) ?? [];
    this.queued.delete(worker);
    for (const i of queued) if (i.type === 'commit' || i.type === 'release') this.deliver(i);
  }

  handle(event: RunEvent<string>): Instruction<string>[] {
    const out = this.coordinator.handle(event);
    for (const i of out) {
      switch (i.type) {
        case 'dispatch': {
          const p = this.byKey.get(i.partition);
          expect(p, `dispatch of unknown partition ${i.partition}`).toBeDefined();
          expect(i.worker).toBe(p!.worker);
          expect(this.dead.has(i.worker), `dispatch to dead ${i.worker}`).toBe(false);
          expect(this.inFlight.get(i.worker), `${i.worker} got a second partition in flight`).toBeUndefined();
          expect(this.terminated(i.run), `dispatch for finished run ${i.run}`).toBe(false);
          expect(
            this.dispatches.some((d) => d.run === i.run && d.partition === i.partition),
            `${i.partition} dispatched twice for run ${i.run}`,
          ).toBe(false);
          // Every argument is the feed of that run or what its producer returned in that run.
          const feeds = this.feeds.get(i.run)!;
          expect(i.args).toEqual(
            p!.args.map((a) => {
              if ('feed' in a) return feeds.get(a.feed);
              const [producer, k] = this.producer.get(a.value)!;
              return result(i.run, producer, k);
            }),
          );
          const d = {
            worker: i.worker,
            run: i.run,
            partition: i.partition,
            args: i.args,
            seq: this.dispatches.length,
          };
          for (const variable of p!.reads)
            this.reads.push({
              run: i.run,
              worker: i.worker,
              variable,
              source: this.current(i.worker, variable),
            });
          this.dispatches.push(d);
          this.inFlight.set(i.worker, d);
          break;
        }
        case 'commit':
          for (const run of i.runs) {
            expect(this.terminated(run), `commit of ended run ${run}`).toBe(false);
            this.commits.add(`${i.worker}/${run}`);
          }
          this.deliver(i);
          break;
        case 'release':
          this.deliver(i);
          break;
        case 'complete':
          expect(this.terminated(i.run), `run ${i.run} finished twice`).toBe(false);
          // Every worker holding a value it staged was told to commit it first.
          for (const [worker, staged] of this.staged)
            for (const s of staged)
              if (s.run === i.run)
                expect(
                  this.commits.has(`${worker}/${i.run}`),
                  `run ${i.run} completed uncommitted on ${worker}`,
                ).toBe(true);
          this.completed.set(i.run, i.fetches);
          break;
        case 'fail':
          expect(this.terminated(i.run), `run ${i.run} finished twice`).toBe(false);
          expect(
            [...this.commits].some((c) => c.endsWith(`/${i.run}`)),
            `run ${i.run} failed after a commit`,
          ).toBe(false);
          this.failed.set(i.run, i.failure);
          break;
        case 'replace-worker':
          this.replaced.push(i.worker);
          break;
      }
    }
    const live = this.workers.filter((w) => !this.dead.has(w));
    if (live.length > 1 && live.every((w) => this.inFlight.has(w))) this.saturated++;
    return out;
  }

  dispatchOf(run: number, partition: string): Dispatch | undefined {
    return this.dispatches.find((d) => d.run === run && d.partition === partition);
  }

  /**
   * Once every run has ended: no live worker holds a staged value (each was committed or
   * released); a completed run never read a value that a failed run staged; and each variable of a
   * live worker holds what the last completed run to assign it (in submission order) assigned.
   */
  checkVariables(): void {
    expect(this.inFlight.size).toBe(0);
    for (const [worker, staged] of this.staged) expect(staged, `left staged on ${worker}`).toEqual([]);
    for (const r of this.reads) {
      if (!this.completed.has(r.run) || r.source === null) continue;
      expect(
        this.completed.has(r.source),
        `run ${r.run} read '${r.variable}' on ${r.worker} as run ${r.source} staged it, which failed`,
      ).toBe(true);
    }
    const expected = new Map<string, Map<string, number>>();
    for (const run of this.submitted) {
      if (!this.completed.has(run)) continue;
      // The coordinator's order: stage, then key.
      const ordered = [...this.partitions].sort(
        (a, b) => a.stage - b.stage || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0),
      );
      for (const p of ordered) {
        if (this.dead.has(p.worker)) continue;
        const vars = expected.get(p.worker) ?? new Map<string, number>();
        for (const v of p.writes) vars.set(v, run);
        expected.set(p.worker, vars);
      }
    }
    for (const worker of this.workers) {
      if (this.dead.has(worker)) continue;
      const got = Object.fromEntries(this.committed.get(worker) ?? []);
      const want = Object.fromEntries(expected.get(worker) ?? []);
      expect(got, `variables of ${worker}`).toEqual(want);
    }
  }
}

const dispatches = (out: readonly Instruction<string>[]) =>
  out.flatMap((i) => (i.type === 'dispatch' ? [`${i.run}:${i.partition}@${i.worker}`] : []));

/** A on w0 feeds B on w1: the smallest pipeline. */
const twoStage = () => [
  part('A', 'w0', 0, { args: [{ feed: 'x' }], returns: [{ values: ['a'], fetches: [] }] }),
  part('B', 'w1', 1, { args: [{ value: 'a' }], returns: [{ values: [], fetches: [0] }] }),
];

describe('RunScheduler: one run', () => {
  it('runs a two-stage plan over two workers, passing A’s result to B', () => {
    const c = new RunScheduler<string>(
      [
        // Given out of stage order: the coordinator orders them.
        part('B', 'w1', 1, {
          args: [{ value: 'a' }, { feed: 'y' }],
          returns: [
            { values: [], fetches: [1] },
            { values: [], fetches: [0] },
          ],
        }),
        part('A', 'w0', 0, { args: [{ feed: 'x' }], returns: [{ values: ['a'], fetches: [2] }] }),
      ],
      3,
    );
    const feeds = new Map([
      ['x', 'X'],
      ['y', 'Y'],
    ]);
    expect(c.handle({ type: 'submit', runs: [{ run: 7, feeds }] })).toEqual([
      { type: 'dispatch', worker: 'w0', run: 7, partition: 'A', args: ['X'] },
    ]);
    expect(c.active).toBe(1);
    expect(c.handle({ type: 'done', worker: 'w0', run: 7, partition: 'A', results: ['a7'] })).toEqual([
      { type: 'dispatch', worker: 'w1', run: 7, partition: 'B', args: ['a7', 'Y'] },
    ]);
    expect(c.handle({ type: 'done', worker: 'w1', run: 7, partition: 'B', results: ['b0', 'b1'] })).toEqual([
      { type: 'complete', run: 7, fetches: ['b1', 'b0', 'a7'] },
    ]);
    expect(c.active).toBe(0);
  });

  it('fills fetch indices covered by several returns of several partitions, in fetch order', () => {
    const partitions = [
      part('P', 'w0', 0, {
        args: [{ feed: 'x' }],
        returns: [
          { values: ['p'], fetches: [4, 1] },
          { values: [], fetches: [3] },
        ],
      }),
      part('Q', 'w1', 0, { args: [{ feed: 'x' }], returns: [{ values: ['q'], fetches: [] }] }),
      part('R', 'w1', 1, {
        args: [{ value: 'q' }, { value: 'p' }],
        returns: [
          { values: [], fetches: [0, 2] },
          { values: [], fetches: [5] },
        ],
      }),
    ];
    const sim = new Sim(partitions, 6);
    sim.submit(0);
    sim.finish('w0');
    sim.finish('w1');
    sim.finish('w1');
    expect(sim.completed.get(0)).toEqual([
      result(0, 'R', 0),
      result(0, 'P', 0),
      result(0, 'R', 0),
      result(0, 'P', 1),
      result(0, 'P', 0),
      result(0, 'R', 1),
    ]);
    expect(sim.expectedFetches(0)).toEqual(sim.completed.get(0));
  });

  it('completes a run of an empty plan at once', () => {
    const c = new RunScheduler<string>([], 0);
    expect(c.handle({ type: 'submit', runs: [{ run: 1, feeds: new Map() }] })).toEqual([
      { type: 'complete', run: 1, fetches: [] },
    ]);
  });

  it('refuses a plan where no partition returns a fetch', () => {
    expect(() => new RunScheduler<string>(twoStage(), 2)).toThrow(/fetch 1/);
  });

  it('fails a run missing a feed with a bad request naming the feed, and starts nothing', () => {
    const c = new RunScheduler<string>(
      [
        part('A', 'w0', 0, {
          args: [{ feed: 'x' }, { feed: 'lr' }],
          returns: [{ values: [], fetches: [0] }],
        }),
      ],
      1,
    );
    const out = c.handle({ type: 'submit', runs: [{ run: 3, feeds: new Map([['x', 'X']]) }] });
    expect(out).toHaveLength(1);
    const [fail] = out;
    expect(fail).toMatchObject({ type: 'fail', run: 3, failure: { kind: 'bad-request' } });
    if (fail?.type !== 'fail' || fail.failure.kind !== 'bad-request') throw new Error('unreachable');
    expect(fail.failure.message).toContain("'lr'");
    expect(fail.failure.message).not.toContain("'x'");
    expect(c.active).toBe(0);
    // The coordinator is not wedged: a good run goes through.
    expect(
      dispatches(
        c.handle({
          type: 'submit',
          runs: [
            {
              run: 4,
              feeds: new Map([
                ['x', 'X'],
                ['lr', 'L'],
              ]),
            },
          ],
        }),
      ),
    ).toEqual(['4:A@w0']);
  });

  it('refuses a duplicate run id and keeps the first run going', () => {
    const sim = new Sim(twoStage(), 1);
    sim.submit(5);
    const out = sim.coordinator.handle({ type: 'submit', runs: [{ run: 5, feeds: sim.feedsFor(5) }] });
    expect(out).toHaveLength(1);
    expect(out[0]).toMatchObject({ type: 'fail', run: 5, failure: { kind: 'bad-request' } });
    expect(sim.coordinator.active).toBe(1);
    sim.finish('w0');
    sim.finish('w1');
    expect(sim.completed.get(5)).toEqual(sim.expectedFetches(5));
  });

  it('fails a run whose partition returns the wrong number of results, with code protocol', () => {
    const c = new RunScheduler<string>(twoStage(), 1);
    c.handle({ type: 'submit', runs: [{ run: 0, feeds: new Map([['x', 'X']]) }] });
    const out = c.handle({ type: 'done', worker: 'w0', run: 0, partition: 'A', results: ['a', 'extra'] });
    expect(out).toEqual([
      expect.objectContaining({
        type: 'fail',
        run: 0,
        failure: expect.objectContaining({
          kind: 'partition-failed',
          worker: 'w0',
          partition: 'A',
          code: 'protocol',
        }),
      }),
      // What w0 kept or staged for the run is dropped there.
      { type: 'release', worker: 'w0', runs: [0] },
    ]);
  });
});

describe('RunScheduler: pipelining', () => {
  const orders: [string, (sim: Sim, rng: Prng) => string][] = [
    ['first worker first', (sim) => [...sim.inFlight.keys()].sort()[0]!],
    ['last worker first', (sim) => [...sim.inFlight.keys()].sort().at(-1)!],
    ['random', (sim, rng) => rng.pick([...sim.inFlight.keys()].sort())],
  ];

  for (const [name, pick] of orders)
    it(`overlaps the stages of 3 runs, one partition per worker (${name})`, () => {
      const rng = new Prng(11);
      const sim = new Sim(twoStage(), 1);
      expect(dispatches(sim.submit(0))).toEqual(['0:A@w0']);
      expect(dispatches(sim.submit(1))).toEqual([]);
      expect(dispatches(sim.submit(2))).toEqual([]);
      // Run 0's A done: its B starts on w1 and run 1's A on w0, in the same batch (GPipe).
      expect(dispatches(sim.finish('w0')).sort()).toEqual(['0:B@w1', '1:A@w0']);
      while (sim.inFlight.size > 0) {
        const w = pick(sim, rng);
        const d = sim.inFlight.get(w)!;
        const out = dispatches(sim.finish(w));
        // w0 is never left idle while an A is waiting.
        if (d.partition === 'A' && d.run < 2) expect(out).toContain(`${d.run + 1}:A@w0`);
      }
      for (const run of [0, 1, 2]) expect(sim.completed.get(run)).toEqual(sim.expectedFetches(run));
      expect(sim.saturated).toBeGreaterThanOrEqual(2);
      // Each stage keeps run order.
      for (const p of ['A', 'B'])
        expect(sim.dispatches.filter((d) => d.partition === p).map((d) => d.run)).toEqual([0, 1, 2]);
    });
});

describe('RunScheduler: variable hazards', () => {
  /**
   * X on w1 feeds P on w0, so run 0's P waits for w1; Q on w0 needs only a feed, so run 1's Q is
   * ready long before run 0's P has started.
   */
  function hazardPlan(
    p: { reads?: string[]; writes?: string[] },
    q: { reads?: string[]; writes?: string[] },
  ) {
    return [
      part('X', 'w1', 0, { args: [{ feed: 'x' }], returns: [{ values: ['xv'], fetches: [] }] }),
      part('Q', 'w0', 0, { args: [{ feed: 'q' }], returns: [{ values: [], fetches: [1] }], ...q }),
      part('P', 'w0', 1, { args: [{ value: 'xv' }], returns: [{ values: [], fetches: [0] }], ...p }),
    ];
  }

  function drive(sim: Sim) {
    expect(dispatches(sim.submit(0)).sort()).toEqual(['0:Q@w0', '0:X@w1']);
    sim.submit(1);
    // Run 0's Q is done long before X: run 1's Q (ready) may or may not start now.
    const early = dispatches(sim.finish('w0'));
    sim.finish('w1');
    while (sim.inFlight.size > 0) sim.finish([...sim.inFlight.keys()].sort()[0]!);
    for (const run of [0, 1]) expect(sim.completed.get(run)).toEqual(sim.expectedFetches(run));
    return early;
  }

  const held: [string, { reads?: string[]; writes?: string[] }, { reads?: string[]; writes?: string[] }][] = [
    ['both write v', { reads: ['v'], writes: ['v'] }, { writes: ['v'] }],
    ['P writes v, Q reads it', { writes: ['v'] }, { reads: ['v'] }],
    ['P reads v, Q writes it', { reads: ['v'] }, { writes: ['v'] }],
  ];
  for (const [name, p, q] of held)
    it(`holds run 1's Q until run 0's P has been dispatched when ${name}`, () => {
      const sim = new Sim(hazardPlan(p, q), 2);
      expect(drive(sim)).toEqual([]);
      expect(sim.dispatchOf(1, 'Q')!.seq).toBeGreaterThan(sim.dispatchOf(0, 'P')!.seq);
      expect(sim.dispatchOf(1, 'P')!.seq).toBeGreaterThan(sim.dispatchOf(0, 'Q')!.seq);
    });

  const free: [string, { reads?: string[]; writes?: string[] }, { reads?: string[]; writes?: string[] }][] = [
    ['they read disjoint variables', { reads: ['v'] }, { reads: ['u'] }],
    ['they write disjoint variables', { reads: ['v'], writes: ['v'] }, { reads: ['u'], writes: ['u'] }],
    ['both only read v', { reads: ['v'] }, { reads: ['v'] }],
  ];
  for (const [name, p, q] of free)
    it(`lets run 1's Q pass run 0's P when ${name}`, () => {
      const sim = new Sim(hazardPlan(p, q), 2);
      expect(drive(sim)).toEqual(['1:Q@w0']);
      expect(sim.dispatchOf(1, 'Q')!.seq).toBeLessThan(sim.dispatchOf(0, 'P')!.seq);
    });

  it('never dispatches an accumulating partition for run k+1 before run k', () => {
    // P accumulates into v and needs values from two workers; run k+1's producers are driven to
    // finish first wherever the coordinator lets them.
    const partitions = [
      part('X', 'w1', 0, { args: [{ feed: 'x' }], returns: [{ values: ['xv'], fetches: [] }] }),
      part('Y', 'w2', 0, { args: [{ feed: 'y' }], returns: [{ values: ['yv'], fetches: [] }] }),
      part('P', 'w0', 1, {
        args: [{ value: 'xv' }, { value: 'yv' }],
        reads: ['v'],
        writes: ['v'],
        returns: [{ values: [], fetches: [0] }],
      }),
    ];
    const rng = new Prng(5);
    for (let trial = 0; trial < 50; trial++) {
      const sim = new Sim(partitions, 1);
      for (const run of [0, 1, 2, 3]) sim.submit(run);
      while (sim.inFlight.size > 0) {
        // Prefer finishing the latest run's work, to make later runs ready early.
        const busy = [...sim.inFlight.values()].sort((a, b) => b.run - a.run);
        sim.finish(rng.bool(0.8) ? busy[0]!.worker : rng.pick(busy).worker);
      }
      expect(sim.dispatches.filter((d) => d.partition === 'P').map((d) => d.run)).toEqual([0, 1, 2, 3]);
      for (const run of [0, 1, 2, 3]) expect(sim.completed.get(run)).toEqual(sim.expectedFetches(run));
    }
  });
});

describe('RunScheduler: failures', () => {
  it("fails only the run of a 'failed' partition, frees its worker, and drops the run's late results", () => {
    // A on w0 and C on w1 run side by side; B on w1 needs A.
    const partitions = [
      part('A', 'w0', 0, { args: [{ feed: 'x' }], returns: [{ values: ['a'], fetches: [] }] }),
      part('C', 'w1', 0, { args: [{ feed: 'x' }], returns: [{ values: [], fetches: [1] }] }),
      part('B', 'w1', 1, { args: [{ value: 'a' }], returns: [{ values: [], fetches: [0] }] }),
    ];
    const sim = new Sim(partitions, 2);
    expect(dispatches(sim.submit(0)).sort()).toEqual(['0:A@w0', '0:C@w1']);
    sim.submit(1);
    const out = sim.failPartition('w0', 'kernel', 'NaN in matmul');
    expect(out.filter((i) => i.type === 'fail')).toEqual([
      {
        type: 'fail',
        run: 0,
        failure: {
          kind: 'partition-failed',
          worker: 'w0',
          partition: 'A',
          code: 'kernel',
          message: 'NaN in matmul',
        },
      },
    ]);
    // w0 is free again and takes run 1's A; w1 still runs run 0's C.
    expect(dispatches(out)).toEqual(['1:A@w0']);
    expect(sim.coordinator.active).toBe(1);
    // Run 0's C finishes late: dropped, and only w1 is freed (w0 still runs run 1's A).
    const late = sim.finish('w1');
    expect(late.some((i) => i.type === 'complete' || i.type === 'fail')).toBe(false);
    expect(dispatches(late)).toEqual(['1:C@w1']);
    while (sim.inFlight.size > 0) sim.finish([...sim.inFlight.keys()].sort()[0]!);
    expect(sim.completed.get(1)).toEqual(sim.expectedFetches(1));
    expect(sim.completed.has(0)).toBe(false);
  });

  it('keeps a cancelled run’s worker busy until its partition returns, then drops the result', () => {
    const sim = new Sim(twoStage(), 1);
    sim.submit(0);
    sim.submit(1);
    const out = sim.cancel(0, 'caller gave up');
    expect(out).toEqual([
      { type: 'fail', run: 0, failure: { kind: 'cancelled', message: 'caller gave up' } },
      { type: 'release', worker: 'w0', runs: [0] },
    ]);
    // Run 0's A is still running on w0: run 1's A waits for it.
    expect(sim.inFlight.get('w0')).toMatchObject({ run: 0, partition: 'A' });
    expect(dispatches(sim.finish('w0'))).toEqual(['1:A@w0']);
    sim.finish('w0');
    sim.finish('w1');
    expect(sim.completed.get(1)).toEqual(sim.expectedFetches(1));
    expect(sim.dispatches.some((d) => d.run === 0 && d.partition === 'B')).toBe(false);
    // Cancelling a finished or unknown run does nothing.
    expect(sim.cancel(1)).toEqual([]);
    expect(sim.cancel(42)).toEqual([]);
  });

  it('drops results from a worker that is not running that run, without freeing it', () => {
    const sim = new Sim(twoStage(), 1);
    for (const run of [0, 1, 2]) sim.submit(run);
    sim.finish('w0'); // run 0's B on w1, run 1's A on w0
    // w0 claims run 0's B, which w1 is still running; then repeats run 0's A result.
    expect(sim.handle({ type: 'done', worker: 'w0', run: 0, partition: 'B', results: ['forged'] })).toEqual(
      [],
    );
    expect(sim.handle({ type: 'done', worker: 'w0', run: 0, partition: 'A', results: ['again'] })).toEqual(
      [],
    );
    expect(
      sim.handle({ type: 'failed', worker: 'w1', run: 2, partition: 'B', code: 'x', message: 'y' }),
    ).toEqual([
      {
        type: 'fail',
        run: 2,
        failure: { kind: 'partition-failed', worker: 'w1', partition: 'B', code: 'x', message: 'y' },
      },
    ]);
    // Neither worker was freed by those: both still run what they were given (the Sim checks that
    // no worker is handed a second partition), and the runs end with their real results.
    expect(sim.inFlight.get('w0')).toMatchObject({ run: 1, partition: 'A' });
    expect(sim.inFlight.get('w1')).toMatchObject({ run: 0, partition: 'B' });
    while (sim.inFlight.size > 0) sim.finish([...sim.inFlight.keys()].sort().at(-1)!);
    for (const run of [0, 1]) expect(sim.completed.get(run)).toEqual(sim.expectedFetches(run));
  });

  it('fails the run when its worker returns results for another partition, with code protocol', () => {
    const sim = new Sim(twoStage(), 1);
    sim.submit(0);
    sim.submit(1);
    sim.inFlight.delete('w0');
    const out = sim.handle({ type: 'done', worker: 'w0', run: 0, partition: 'B', results: ['b'] });
    expect(out.filter((i) => i.type === 'fail')).toEqual([
      {
        type: 'fail',
        run: 0,
        failure: expect.objectContaining({
          kind: 'partition-failed',
          worker: 'w0',
          partition: 'B',
          code: 'protocol',
        }),
      },
    ]);
    // The worker did answer: it is free for run 1.
    expect(dispatches(out)).toEqual(['1:A@w0']);
  });

  it("'exited' fails every run that still needs the worker, naming the partition it ran", () => {
    const sim = new Sim(twoStage(), 1);
    for (const run of [0, 1, 2]) sim.submit(run);
    sim.finish('w0'); // run 0's B on w1, run 1's A on w0
    const out = sim.exit('w1', 'out of memory');
    const fails = out.filter((i) => i.type === 'fail');
    expect(fails).toEqual([
      {
        type: 'fail',
        run: 0,
        failure: { kind: 'worker-exited', worker: 'w1', partition: 'B', message: 'out of memory' },
      },
      {
        type: 'fail',
        run: 1,
        failure: { kind: 'worker-exited', worker: 'w1', partition: null, message: 'out of memory' },
      },
      {
        type: 'fail',
        run: 2,
        failure: { kind: 'worker-exited', worker: 'w1', partition: null, message: 'out of memory' },
      },
    ]);
    expect(out.filter((i) => i.type === 'replace-worker')).toEqual([
      { type: 'replace-worker', worker: 'w1' },
    ]);
    expect(sim.coordinator.active).toBe(0);
    // Once only.
    expect(sim.exit('w1')).toEqual([]);
    // w0 finishes run 1's A: dropped, nothing else to run.
    expect(sim.finish('w0')).toEqual([]);
    // A run submitted now cannot run: its worker is gone.
    const late = sim.submit(3);
    expect(late).toEqual([
      {
        type: 'fail',
        run: 3,
        failure: expect.objectContaining({ kind: 'worker-exited', worker: 'w1', partition: null }),
      },
    ]);
    expect(sim.replaced).toEqual(['w1']);
  });

  it("'exited' spares runs that no longer need the worker", () => {
    const sim = new Sim(twoStage(), 1);
    for (const run of [0, 1, 2]) sim.submit(run);
    sim.finish('w0'); // run 0: A done, B on w1; run 1's A on w0
    const out = sim.exit('w0', 'killed');
    expect(out.filter((i) => i.type === 'fail')).toEqual([
      {
        type: 'fail',
        run: 1,
        failure: { kind: 'worker-exited', worker: 'w0', partition: 'A', message: 'killed' },
      },
      {
        type: 'fail',
        run: 2,
        failure: { kind: 'worker-exited', worker: 'w0', partition: null, message: 'killed' },
      },
    ]);
    expect(dispatches(out)).toEqual([]);
    sim.finish('w1');
    expect(sim.completed.get(0)).toEqual(sim.expectedFetches(0));
    expect(sim.submit(3)).toEqual([
      { type: 'fail', run: 3, failure: expect.objectContaining({ kind: 'worker-exited', worker: 'w0' }) },
    ]);
  });
});

describe('RunScheduler: atomic steps', () => {
  /** A on w0 assigns v and feeds B on w1, which assigns u: a step stages on both workers. */
  const assigning = () => [
    part('A', 'w0', 0, {
      args: [{ feed: 'x' }],
      returns: [{ values: ['a'], fetches: [] }],
      reads: ['v'],
      writes: ['v'],
    }),
    part('B', 'w1', 1, {
      args: [{ value: 'a' }],
      returns: [{ values: [], fetches: [0] }],
      reads: ['u'],
      writes: ['u'],
    }),
  ];
  const kinds = (out: readonly Instruction<string>[]) =>
    out.flatMap((i) =>
      i.type === 'commit' || i.type === 'release'
        ? [`${i.type} ${i.worker} ${i.runs.join(',')}`]
        : i.type === 'complete' || i.type === 'fail'
          ? [`${i.type} ${i.run}`]
          : [],
    );

  it('commits on every worker that staged, before it reports the run complete', () => {
    const sim = new Sim(assigning(), 1);
    sim.submit(0);
    expect(kinds(sim.finish('w0'))).toEqual([]);
    expect(kinds(sim.finish('w1'))).toEqual(['commit w0 0', 'commit w1 0', 'complete 0']);
    sim.checkVariables();
  });

  it('commits nowhere when no partition of the step assigns', () => {
    const sim = new Sim(twoStage(), 1);
    sim.submit(0);
    sim.finish('w0');
    expect(kinds(sim.finish('w1'))).toEqual(['complete 0']);
  });

  it('holds every run of a step until the last finishes, then commits them together, in order', () => {
    const sim = new Sim(assigning(), 1);
    sim.submitStep([4, 2, 9]);
    const seen: string[] = [];
    while (sim.inFlight.size > 0) seen.push(...kinds(sim.finish([...sim.inFlight.keys()].sort()[0]!)));
    expect(seen).toEqual(['commit w0 4,2,9', 'commit w1 4,2,9', 'complete 4', 'complete 2', 'complete 9']);
    // Run 2 read v as run 4 staged it, run 9 as run 2 did: pipelined runs see each other's updates.
    expect(sim.reads.filter((r) => r.variable === 'v').map((r) => r.source)).toEqual([null, 4, 2]);
    sim.checkVariables();
  });

  it('releases a failed step everywhere it ran, and commits nothing of it', () => {
    const sim = new Sim(assigning(), 1);
    sim.submitStep([0, 1]);
    sim.finish('w0'); // run 0's A staged v; run 1's A and run 0's B start
    expect(kinds(sim.failPartition('w1'))).toEqual(['fail 0', 'fail 1', 'release w0 0,1', 'release w1 0,1']);
    // Run 1's A, still running on w0, stages v after the release was sent: the release reaches w0
    // after it, and drops it too.
    sim.finish('w0');
    expect(sim.commits.size).toBe(0);
    sim.checkVariables();
    expect(sim.committed.get('w0') ?? new Map()).toEqual(new Map());
  });

  it('fails a whole step when one of its runs is cancelled, even a run already finished', () => {
    const sim = new Sim(assigning(), 1);
    sim.submitStep([0, 1]);
    sim.finish('w0');
    sim.finish('w1'); // run 0 has finished everything; run 1's A has staged on w0
    sim.finish('w0');
    expect(kinds(sim.cancel(1))).toEqual(['fail 0', 'fail 1', 'release w0 0,1', 'release w1 0,1']);
    sim.finish('w1');
    sim.checkVariables();
  });

  it('fails a later step that read what a failed step staged, and spares one that did not', () => {
    // P assigns v on w0; Z on w1 is the slow rest of each run; R on w2 reads nothing.
    const partitions = [
      part('P', 'w0', 0, {
        args: [{ feed: 'x' }],
        returns: [{ values: [], fetches: [0] }],
        reads: ['v'],
        writes: ['v'],
      }),
      part('Z', 'w1', 0, { args: [{ feed: 'x' }], returns: [{ values: [], fetches: [1] }] }),
    ];
    const sim = new Sim(partitions, 2);
    sim.submit(0);
    sim.submit(1);
    sim.finish('w0'); // run 0's P staged v; run 1's P now reads it
    expect(sim.dispatchOf(1, 'P')).toBeDefined();
    const out = sim.failPartition('w1'); // run 0's Z fails
    expect(kinds(out)).toEqual(['fail 0', 'release w0 0', 'release w1 0', 'fail 1', 'release w0 1']);
    expect(sim.failed.get(1)).toEqual({
      kind: 'cancelled',
      message: "it read 'v' as updated by run 0, which failed",
    });
    sim.finish('w0');
    sim.checkVariables();

    // The same, but run 1 touches no variable of run 0: it goes on and commits.
    const free = new Sim(
      [
        partitions[0]!,
        part('Z', 'w1', 0, { args: [{ feed: 'x' }], returns: [{ values: [], fetches: [1] }], writes: ['u'] }),
      ],
      2,
    );
    free.submit(0);
    free.submit(1);
    free.finish('w1'); // run 0's Z staged u
    free.failPartition('w0'); // run 0's P fails
    while (free.inFlight.size > 0) free.finish([...free.inFlight.keys()].sort()[0]!);
    expect(free.completed.has(1)).toBe(true);
    free.checkVariables();
  });

  it('commits each step once it and every step before it have finished, not waiting for later ones', () => {
    const partitions = [
      part('P', 'w0', 0, { args: [{ feed: 'x' }], returns: [{ values: [], fetches: [0] }], writes: ['v'] }),
      part('Z', 'w1', 0, { args: [{ feed: 'x' }], returns: [{ values: [], fetches: [1] }] }),
    ];
    const sim = new Sim(partitions, 2);
    sim.submit(0);
    sim.submit(1);
    sim.finish('w0'); // run 0's P
    expect(kinds(sim.finish('w0'))).toEqual([]); // run 1's P: run 1 still needs Z
    expect(kinds(sim.finish('w1'))).toEqual(['commit w0 0', 'complete 0']); // run 0's Z
    expect(kinds(sim.finish('w1'))).toEqual(['commit w0 1', 'complete 1']);
    sim.checkVariables();
  });

  it('fails a step whose staged values died with their worker, though it no longer needs it', () => {
    const sim = new Sim(assigning(), 1);
    sim.submit(0);
    sim.finish('w0'); // A staged v on w0; B runs on w1
    const out = sim.exit('w0', 'oom');
    expect(out.filter((i) => i.type === 'fail')).toEqual([
      {
        type: 'fail',
        run: 0,
        failure: { kind: 'worker-exited', worker: 'w0', partition: null, message: 'oom' },
      },
    ]);
    // The release goes to w1 only: w0 is gone.
    expect(kinds(out)).toEqual(['fail 0', 'release w1 0']);
    sim.finish('w1');
    sim.checkVariables();
  });
});

describe('RunScheduler: timeouts', () => {
  it('fails the step naming the worker and partition it waited for, and replaces that worker', () => {
    const sim = new Sim(twoStage(), 1);
    sim.submitStep([0, 1]);
    sim.finish('w0'); // run 0's B on w1, run 1's A on w0
    sim.finish('w0'); // run 1's A: w0 idle, run 1's B waits for w1
    const out = sim.timeout(0, 250);
    const failure = {
      kind: 'timeout',
      millis: 250,
      stuck: [{ worker: 'w1', partition: 'B' }],
    };
    expect(out).toEqual([
      { type: 'fail', run: 0, failure },
      { type: 'fail', run: 1, failure },
      { type: 'release', worker: 'w0', runs: [0, 1] },
      { type: 'release', worker: 'w1', runs: [0, 1] },
      { type: 'replace-worker', worker: 'w1' },
    ]);
    // The worker is gone to this coordinator, as a dead one is; w0 was only idle and stays.
    expect(sim.submit(2)).toEqual([
      { type: 'fail', run: 2, failure: expect.objectContaining({ kind: 'worker-exited', worker: 'w1' }) },
    ]);
    // A timeout of a run that ended, or never was, does nothing.
    expect(sim.timeout(0)).toEqual([]);
    expect(sim.timeout(77)).toEqual([]);
  });

  it('names every worker it waited for, and fails other steps that needed a replaced one', () => {
    const partitions = [
      part('A', 'w0', 0, { args: [{ feed: 'x' }], returns: [{ values: [], fetches: [0] }] }),
      part('C', 'w1', 0, { args: [{ feed: 'x' }], returns: [{ values: [], fetches: [1] }] }),
    ];
    const sim = new Sim(partitions, 2);
    sim.submit(0);
    sim.submit(1);
    const out = sim.timeout(0, 5);
    expect(sim.failed.get(0)).toEqual({
      kind: 'timeout',
      millis: 5,
      stuck: [
        { worker: 'w0', partition: 'A' },
        { worker: 'w1', partition: 'C' },
      ],
    });
    expect(sim.failed.get(1)).toMatchObject({ kind: 'worker-exited', worker: 'w0', partition: null });
    expect(out.filter((i) => i.type === 'replace-worker').map((i) => i.worker)).toEqual(['w0', 'w1']);
  });

  it('blames a worker still stuck in a partition of a run that already ended', () => {
    const sim = new Sim(twoStage(), 1);
    sim.submit(0);
    sim.cancel(0); // run 0's A keeps w0 busy: it never returns
    sim.submit(1);
    expect(sim.inFlight.get('w0')).toMatchObject({ run: 0, partition: 'A' });
    sim.timeout(1, 40);
    expect(sim.failed.get(1)).toEqual({
      kind: 'timeout',
      millis: 40,
      stuck: [{ worker: 'w0', partition: 'A' }],
    });
    expect(sim.replaced).toEqual(['w0']);
  });

  it('replaces no worker busy with another step that this one does not wait for', () => {
    const partitions = [
      part('A', 'w0', 0, { args: [{ feed: 'x' }], returns: [{ values: [], fetches: [0] }] }),
      part('B', 'w1', 0, { args: [{ feed: 'x' }], returns: [{ values: [], fetches: [1] }] }),
    ];
    const sim = new Sim(partitions, 2);
    sim.submit(0);
    sim.finish('w1'); // run 0 only waits for w0 now
    sim.submit(1); // run 1's B on w1
    sim.timeout(0);
    expect(sim.failed.get(0)).toMatchObject({ kind: 'timeout', stuck: [{ worker: 'w0', partition: 'A' }] });
    expect(sim.replaced).toEqual(['w0']);
    // Run 1 needed w0 too: it fails as for a dead worker; w1 was not replaced.
    expect(sim.failed.get(1)).toMatchObject({ kind: 'worker-exited', worker: 'w0' });
  });
});

// ---- property test: random plans, concurrent runs, events in random order ----

const VARIABLES = ['a', 'b', 'c'];
const FEEDS = ['f0', 'f1', 'f2'];

function randomPlan(rng: Prng): { partitions: ScheduledPartition[]; fetchCount: number } {
  const workers = ['w0', 'w1', 'w2'].slice(0, rng.int(1, 3));
  const stages = rng.int(1, 4);
  const made: {
    key: string;
    worker: string;
    stage: number;
    args: Arg[];
    returns: { values: string[]; fetches: number[] }[];
    reads: string[];
    writes: string[];
  }[] = [];
  const values: { key: string; stage: number }[] = [];
  for (let stage = 0; stage < stages; stage++)
    for (const worker of workers) {
      const count = rng.int(stage === 0 && worker === 'w0' ? 1 : 0, 2);
      for (let c = 0; c < count; c++) {
        const key = `p${stage}.${worker}.${c}`;
        const earlier = values.filter((v) => v.stage < stage);
        const args: Arg[] = [];
        for (let n = rng.int(0, 3); n > 0; n--)
          args.push(
            earlier.length > 0 && rng.bool(0.7)
              ? { value: rng.pick(earlier).key }
              : { feed: rng.pick(FEEDS) },
          );
        const returns = Array.from({ length: rng.int(1, 2) }, (_, k) => ({
          values: Array.from({ length: rng.int(0, 2) }, (_, m) => `${key}/${k}.${m}`),
          fetches: [] as number[],
        }));
        for (const r of returns) for (const v of r.values) values.push({ key: v, stage });
        made.push({
          key,
          worker,
          stage,
          args,
          returns,
          reads: VARIABLES.filter(() => rng.bool(0.3)),
          writes: VARIABLES.filter(() => rng.bool(0.2)),
        });
      }
    }
  const fetchCount = rng.int(0, 4);
  for (let f = 0; f < fetchCount; f++) rng.pick(rng.pick(made).returns).fetches.push(f);
  // Handed over in random order: the coordinator orders them itself.
  const partitions: ScheduledPartition[] = [];
  const pool = [...made];
  while (pool.length > 0) partitions.push(pool.splice(rng.int(0, pool.length - 1), 1)[0]!);
  return { partitions, fetchCount };
}

const conflicts = (p: ScheduledPartition, q: ScheduledPartition) =>
  p.writes.some((v) => q.reads.includes(v) || q.writes.includes(v)) ||
  q.writes.some((v) => p.reads.includes(v));

/** For runs that both completed: conflicting partitions were dispatched in submission order. */
function checkHazardOrder(sim: Sim) {
  const runs = sim.submitted.filter((r) => sim.completed.has(r));
  for (const p of sim.partitions)
    for (const q of sim.partitions) {
      if (!conflicts(p, q)) continue;
      for (let x = 0; x < runs.length; x++)
        for (let y = x + 1; y < runs.length; y++) {
          const before = sim.dispatchOf(runs[x]!, p.key)!;
          const after = sim.dispatchOf(runs[y]!, q.key)!;
          expect(
            before.seq,
            `${p.key} of run ${runs[x]} after ${q.key} of later run ${runs[y]}`,
          ).toBeLessThan(after.seq);
        }
    }
}

/** Submits the next one to three runs as one step; returns the index after them. */
function submitSome(sim: Sim, rng: Prng, ids: readonly number[], next: number): number {
  const end = Math.min(ids.length, next + rng.int(1, 3));
  sim.submitStep(ids.slice(next, end));
  return end;
}

/** Distinct run ids, not in increasing order: submission order is what counts. */
function runIds(rng: Prng, n: number): number[] {
  const ids = new Set<number>();
  while (ids.size < n) ids.add(rng.int(0, 1000));
  return [...ids];
}

describe('RunScheduler: random plans', () => {
  it('completes every run exactly once with its own results, one partition per worker, hazards in order', () => {
    let overlapped = 0;
    for (let seed = 1; seed <= 300; seed++) {
      const rng = new Prng(seed);
      const { partitions, fetchCount } = randomPlan(rng);
      const sim = new Sim(partitions, fetchCount);
      const ids = runIds(rng, rng.int(1, 5));
      let next = 0;
      while (next < ids.length || sim.inFlight.size > 0) {
        if (next < ids.length && (sim.inFlight.size === 0 || rng.bool(0.3)))
          next = submitSome(sim, rng, ids, next);
        else sim.finish(rng.pick([...sim.inFlight.keys()].sort()));
      }
      for (const run of ids) {
        expect(sim.completed.get(run), `seed ${seed}: run ${run}`).toEqual(sim.expectedFetches(run));
        expect(sim.completed.get(run)!.every((f) => f !== undefined)).toBe(true);
      }
      expect(sim.failed.size).toBe(0);
      expect(sim.coordinator.active).toBe(0);
      for (const run of ids)
        for (const p of partitions) expect(sim.dispatchOf(run, p.key), `seed ${seed}`).toBeDefined();
      checkHazardOrder(sim);
      sim.checkVariables();
      overlapped += sim.saturated;
    }
    // The generator does produce overlapping work (else the test proves little).
    expect(overlapped).toBeGreaterThan(100);
  });

  it('ends every run exactly once under random failures, cancels and worker exits', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const rng = new Prng(1000 + seed);
      const { partitions, fetchCount } = randomPlan(rng);
      const sim = new Sim(partitions, fetchCount);
      const ids = runIds(rng, rng.int(1, 5));
      let next = 0;
      while (next < ids.length || sim.inFlight.size > 0) {
        const roll = rng.int(0, 99);
        if (next < ids.length && (sim.inFlight.size === 0 || roll < 25)) {
          next = submitSome(sim, rng, ids, next);
          continue;
        }
        const worker = rng.pick([...sim.inFlight.keys()].sort());
        if (roll < 35) {
          const d = sim.inFlight.get(worker)!;
          const active = !sim.terminated(d.run);
          const out = sim.failPartition(worker, 'kernel', `failed ${d.partition}`);
          const fails = out.filter((i) => i.type === 'fail');
          // The failed run, with the rest of its step (and later steps that read what it staged).
          expect(fails.find((i) => i.run === d.run)).toEqual(
            active
              ? {
                  type: 'fail',
                  run: d.run,
                  failure: {
                    kind: 'partition-failed',
                    worker,
                    partition: d.partition,
                    code: 'kernel',
                    message: `failed ${d.partition}`,
                  },
                }
              : undefined,
          );
        } else if (roll < 40) {
          const run = rng.pick(ids.slice(0, Math.max(next, 1)));
          const active = sim.submitted.includes(run) && !sim.terminated(run);
          const fails = sim.cancel(run).filter((i) => i.type === 'fail');
          expect(fails.some((i) => i.run === run)).toBe(active);
          if (!active) expect(fails).toEqual([]);
        } else if (roll < 42) {
          const out = sim.exit(worker);
          expect(out.filter((i) => i.type === 'replace-worker')).toEqual([
            { type: 'replace-worker', worker },
          ]);
        } else if (roll < 44) {
          const run = rng.pick(ids.slice(0, Math.max(next, 1)));
          const active = sim.submitted.includes(run) && !sim.terminated(run);
          const out = sim.timeout(run);
          const fails = out.filter((i) => i.type === 'fail');
          if (!active) expect(out).toEqual([]);
          else expect(fails.find((i) => i.run === run)).toMatchObject({ failure: { kind: 'timeout' } });
        } else sim.finish(worker);
      }
      for (const run of ids) {
        expect(sim.terminated(run), `seed ${seed}: run ${run} never ended`).toBe(true);
        const fetches = sim.completed.get(run);
        if (fetches) expect(fetches).toEqual(sim.expectedFetches(run));
      }
      expect(sim.coordinator.active).toBe(0);
      checkHazardOrder(sim);
      sim.checkVariables();
    }
  });
});

/**
 * Workers as dispatch-ahead makes them: each runs what it is sent in order, one at a time, and a
 * partition at the head of its queue runs only once the values it waits for have been pushed by
 * their producers' finishing (a release lets a waiting one go at once, failed, as the real worker
 * does; so is a partition of a run already released there).
 */
class QueueSim {
  readonly scheduler: RunScheduler<string>;
  readonly queues = new Map<string, Dispatch[]>();
  readonly byKey: Map<string, ScheduledPartition>;
  readonly produced = new Set<string>();
  readonly released = new Set<string>();
  readonly completed = new Map<number, readonly string[]>();
  readonly failed = new Map<number, RunFailure>();
  readonly order: Dispatch[] = [];
  /** Partitions sent while a value they wait for was not yet produced. */
  ahead = 0;
  deepest = 0;

  constructor(
    readonly partitions: readonly ScheduledPartition[],
    readonly fetchCount: number,
    readonly depth: number,
  ) {
    this.scheduler = new RunScheduler<string>(partitions, fetchCount, { dispatchAhead: depth });
    this.byKey = new Map(partitions.map((p) => [p.key, p]));
  }

  submit(runs: readonly number[]): void {
    const names = new Set(
      this.partitions.flatMap((p) => p.args.flatMap((a) => ('feed' in a ? [a.feed] : []))),
    );
    const feeds = (run: number) => new Map([...names].map((n) => [n, fed(run, n)]));
    this.apply(
      this.scheduler.handle({ type: 'submit', runs: runs.map((run) => ({ run, feeds: feeds(run) })) }),
    );
  }

  /** Workers whose first partition can finish (or fail, released) now. */
  ready(): string[] {
    return [...this.queues]
      .filter(([worker, q]) => {
        const head = q[0];
        if (!head) return false;
        if (this.released.has(`${worker}/${head.run}`)) return true;
        return (this.byKey.get(head.partition)!.waits ?? []).every((k) =>
          this.produced.has(`${head.run}/${k}`),
        );
      })
      .map(([w]) => w)
      .sort();
  }

  get pending(): number {
    return [...this.queues.values()].reduce((n, q) => n + q.length, 0);
  }

  step(worker: string, fail = false): void {
    const head = this.queues.get(worker)!.shift()!;
    const p = this.byKey.get(head.partition)!;
    if (fail || this.released.has(`${worker}/${head.run}`)) {
      this.apply(
        this.scheduler.handle({
          type: 'failed',
          worker,
          run: head.run,
          partition: head.partition,
          code: 'kernel',
          message: 'failed',
        }),
      );
      return;
    }
    for (const k of p.keeps ?? []) this.produced.add(`${head.run}/${k}`);
    const results = p.returns.map((_, k) => result(head.run, p.key, k));
    this.apply(this.scheduler.handle({ type: 'done', worker, run: head.run, partition: p.key, results }));
  }

  private apply(instructions: readonly Instruction<string>[]): void {
    for (const i of instructions) {
      if (i.type === 'dispatch') {
        const p = this.byKey.get(i.partition)!;
        expect(i.args).toEqual(p.args.map((a) => ('feed' in a ? fed(i.run, a.feed) : '?')));
        if ((p.waits ?? []).some((k) => !this.produced.has(`${i.run}/${k}`))) this.ahead++;
        const q = this.queues.get(i.worker) ?? [];
        const d = {
          worker: i.worker,
          run: i.run,
          partition: i.partition,
          args: i.args,
          seq: this.order.length,
        };
        q.push(d);
        this.order.push(d);
        this.queues.set(i.worker, q);
        this.deepest = Math.max(this.deepest, q.length);
        // Partitions with arguments count against the depth; those without may wait beyond it.
        const carrying = q.filter((held) => this.byKey.get(held.partition)!.args.length > 0);
        expect(carrying.length).toBeLessThanOrEqual(this.depth);
        expect(q.length).toBeLessThanOrEqual(this.depth > 1 ? MAX_HELD : 1);
      } else if (i.type === 'release') for (const r of i.runs) this.released.add(`${i.worker}/${r}`);
      else if (i.type === 'complete') this.completed.set(i.run, i.fetches);
      else if (i.type === 'fail') this.failed.set(i.run, i.failure);
    }
  }

  expectedFetches(run: number): string[] {
    const out: string[] = [];
    for (const p of this.partitions)
      p.returns.forEach((r, k) => {
        for (const f of r.fetches) out[f] = result(run, p.key, k);
      });
    return out;
  }
}

/**
 * Submits the runs a few at a time and lets random workers go on until every queue is empty,
 * failing a partition with probability `failing`. Something must always be able to go on: a
 * queue whose head waits forever is a deadlock.
 */
function drive(sim: QueueSim, rng: Prng, ids: readonly number[], seed: number, failing: number): void {
  let next = 0;
  while (next < ids.length || sim.pending > 0) {
    const ready = sim.ready();
    if (next < ids.length && (ready.length === 0 || rng.bool(0.3))) {
      const end = Math.min(ids.length, next + rng.int(1, 3));
      sim.submit(ids.slice(next, end));
      next = end;
      continue;
    }
    expect(ready.length, `seed ${seed}: every worker waits`).toBeGreaterThan(0);
    sim.step(rng.pick(ready), rng.bool(failing));
  }
}

/** A random plan whose values cross between partitions as pushes (keeps and waits), as lowered plans do. */
function randomPushPlan(rng: Prng): { partitions: ScheduledPartition[]; fetchCount: number } {
  const workers = ['w0', 'w1', 'w2'].slice(0, rng.int(2, 3));
  const made: (ScheduledPartition & {
    keeps: string[];
    waits: string[];
    returns: { values: string[]; fetches: number[] }[];
  })[] = [];
  const stages = rng.int(2, 5);
  for (let stage = 0; stage < stages; stage++)
    for (const worker of workers) {
      if (!rng.bool(stage === 0 && worker === 'w0' ? 1 : 0.7)) continue;
      const key = `p${stage}.${worker}`;
      const earlier = made.filter((m) => m.stage < stage);
      const waits: string[] = [];
      for (const producer of earlier)
        if (rng.bool(0.5)) {
          const value = `${producer.key}->${key}`;
          producer.keeps.push(value);
          waits.push(value);
        }
      made.push({
        key,
        worker,
        stage,
        args: rng.bool(0.5) ? [{ feed: rng.pick(FEEDS) }] : [],
        returns: [{ values: [], fetches: [] }],
        keeps: [],
        waits,
        reads: VARIABLES.filter(() => rng.bool(0.3)),
        writes: VARIABLES.filter(() => rng.bool(0.2)),
      });
    }
  const fetchCount = rng.int(1, 3);
  for (let f = 0; f < fetchCount; f++) rng.pick(made).returns[0]!.fetches.push(f);
  return { partitions: made, fetchCount };
}

describe('RunScheduler: dispatching ahead', () => {
  it('sends every part of a stage that takes no arguments at once, past the depth; those that do wait', () => {
    const part = (key: string, worker: string, stage: number, more: Partial<ScheduledPartition>) => ({
      key,
      worker,
      stage,
      args: [],
      returns: [],
      reads: [],
      writes: [],
      ...more,
    });
    const pieces = [0, 1, 2, 3, 4];
    const partitions: ScheduledPartition[] = [
      part('source', 'w0', 0, { args: [{ feed: 'x' }], keeps: pieces.map((i) => `piece${i}`) }),
      ...pieces.map((i) =>
        part(`add${i}`, 'w1', 1, {
          part: i,
          waits: [`piece${i}`],
          returns: i === 0 ? [{ values: [], fetches: [0] }] : [],
        }),
      ),
      ...[0, 1, 2].map((i) => part(`fed${i}`, 'w1', 2, { args: [{ feed: 'x' }] })),
    ];
    const scheduler = new RunScheduler<string>(partitions, 1, { dispatchAhead: 2 });
    const sent = scheduler
      .handle({ type: 'submit', runs: [{ run: 1, feeds: new Map([['x', 'x1']]) }] })
      .flatMap((i) => (i.type === 'dispatch' ? [`${i.worker}:${i.partition}`] : []));
    // One pass: the source, every piece's add on w1 (in part order) past the depth of 2, and
    // as many partitions with arguments as the depth allows.
    expect(sent).toEqual(['w0:source', ...pieces.map((i) => `w1:add${i}`), 'w1:fed0', 'w1:fed1']);
    const done = (worker: string, partition: string) =>
      scheduler
        .handle({ type: 'done', worker, run: 1, partition, results: partition === 'add0' ? ['r'] : [] })
        .flatMap((i) => (i.type === 'dispatch' ? [i.partition] : []));
    expect(done('w0', 'source')).toEqual([]);
    for (const i of pieces) expect(done('w1', `add${i}`)).toEqual([]);
    expect(done('w1', 'fed0')).toEqual(['fed2']);
  });

  it('sends chains of partitions at once, never deadlocks, and completes every run with its results', () => {
    let ahead = 0;
    for (let seed = 1; seed <= 300; seed++) {
      const rng = new Prng(5000 + seed);
      const { partitions, fetchCount } = randomPushPlan(rng);
      const sim = new QueueSim(partitions, fetchCount, rng.int(2, 4));
      const ids = runIds(rng, rng.int(1, 5));
      drive(sim, rng, ids, seed, 0);
      for (const run of ids)
        expect(sim.completed.get(run), `seed ${seed}: run ${run}`).toEqual(sim.expectedFetches(run));
      expect(sim.failed.size).toBe(0);
      expect(sim.scheduler.active).toBe(0);
      // Partitions that share a variable went out in submission order.
      for (const [a, b] of ids.flatMap((x, i) => ids.slice(i + 1).map((y) => [x, y] as const)))
        for (const p of partitions)
          for (const q of partitions) {
            if (!conflicts(p, q)) continue;
            const first = sim.order.find((d) => d.run === a && d.partition === p.key)!;
            const second = sim.order.find((d) => d.run === b && d.partition === q.key)!;
            expect(first.seq, `seed ${seed}`).toBeLessThan(second.seq);
          }
      ahead += sim.ahead;
    }
    expect(ahead).toBeGreaterThan(300);
  });

  it('ends every run exactly once when partitions fail while others wait for their values', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const rng = new Prng(9000 + seed);
      const { partitions, fetchCount } = randomPushPlan(rng);
      const sim = new QueueSim(partitions, fetchCount, 3);
      const ids = runIds(rng, rng.int(1, 5));
      drive(sim, rng, ids, seed, 0.1);
      for (const run of ids)
        expect(sim.completed.has(run) !== sim.failed.has(run), `seed ${seed}: run ${run}`).toBe(true);
      expect(sim.scheduler.active).toBe(0);
    }
  });

  it('names only the worker that is running, not one waiting for its value, when a run times out', () => {
    // w0 computes a value w1 waits for; w0 hangs.
    const partitions: ScheduledPartition[] = [
      { ...part('A', 'w0', 0), keeps: ['a'] },
      { ...part('B', 'w1', 1, { returns: [{ values: [], fetches: [0] }] }), waits: ['a'] },
    ];
    const sim = new QueueSim(partitions, 1, 2);
    sim.submit([0]);
    expect(sim.queues.get('w1')).toHaveLength(1);
    const out = sim.scheduler.handle({ type: 'timeout', run: 0, millis: 10 });
    expect(out.find((i) => i.type === 'fail')).toMatchObject({
      failure: { kind: 'timeout', stuck: [{ worker: 'w0', partition: 'A' }] },
    });
    expect(out.filter((i) => i.type === 'replace-worker')).toEqual([
      { type: 'replace-worker', worker: 'w0' },
    ]);
  });
});
