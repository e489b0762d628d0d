import { describe, expect, it } from 'vitest';
import { type ClusterEvent, Coordinator } from '../src/cluster/coordinator.js';
import type { Instruction, ScheduledPartition } from '../src/cluster/run-scheduler.js';
import { formatStory, StoryLog } from '../src/cluster/story.js';

/**
 * The cluster's long-lived state machine, driven by hand: membership, variable homes and the
 * runs of each execution, with every decision told in its story. (The scheduling of runs within
 * an execution is tested exhaustively in run-scheduler.test.ts.)
 */

type Body =
  ClusterEvent<string> extends infer E
    ? E extends ClusterEvent<string>
      ? Omit<E, 'stimulus' | 'at'>
      : never
    : never;

class Driver {
  readonly coordinator = new Coordinator<string>();
  private n = 0;
  handle(event: Body): Instruction<string>[] {
    return this.coordinator.handle({
      ...event,
      stimulus: `${event.type}-${++this.n}`,
      at: 1_700_000_000_000 + this.n,
    } as ClusterEvent<string>);
  }
  join(...workers: string[]): void {
    for (const worker of workers)
      this.handle({ type: 'joined', worker, generation: 1, device: 'cpu device' });
  }
}

// worker:0 computes h from the feed x; worker:1 reads variable w, returns the fetch.
const plan: ScheduledPartition[] = [
  {
    key: 'p0/worker:0#0',
    worker: 'worker:0',
    stage: 0,
    args: [{ feed: 'x' }],
    returns: [{ values: ['h'], fetches: [] }],
    reads: [],
    writes: [],
  },
  {
    key: 'p0/worker:1#1',
    worker: 'worker:1',
    stage: 1,
    args: [{ value: 'h' }],
    returns: [{ values: [], fetches: [0] }],
    reads: ['w'],
    writes: ['w'],
  },
];

function placed(d: Driver): void {
  d.handle({
    type: 'placed',
    plan: 'p0',
    partitions: [
      {
        key: 'p0/worker:0#0',
        worker: 'worker:0',
        nodes: 3,
        reasons: ['earliest finish: worker:0 1 µs vs worker:1 2 µs'],
      },
      {
        key: 'p0/worker:1#1',
        worker: 'worker:1',
        nodes: 5,
        reasons: ["colocated with variable 'w' (#2): hint worker:1"],
      },
    ],
    variables: [{ name: 'w', worker: 'worker:1', reason: 'hint worker:1' }],
  });
  for (const p of plan) d.handle({ type: 'loaded', worker: p.worker, partitions: [p.key] });
}

const execute = (d: Driver, run: number) =>
  d.handle({
    type: 'execute',
    partitions: plan,
    fetchCount: 1,
    runs: [{ run, feeds: new Map([['x', `x${run}`]]) }],
  });

describe('Coordinator', () => {
  it('runs an execution to its end and tells, per subject, what it decided and why', () => {
    const d = new Driver();
    d.join('worker:0', 'worker:1');
    placed(d);
    expect(execute(d, 0)).toEqual([
      { type: 'dispatch', worker: 'worker:0', run: 0, partition: 'p0/worker:0#0', args: ['x0'] },
    ]);
    const next = d.handle({
      type: 'done',
      worker: 'worker:0',
      run: 0,
      partition: 'p0/worker:0#0',
      results: ['h0'],
    });
    expect(next).toEqual([
      { type: 'dispatch', worker: 'worker:1', run: 0, partition: 'p0/worker:1#1', args: ['h0'] },
    ]);
    const end = d.handle({
      type: 'done',
      worker: 'worker:1',
      run: 0,
      partition: 'p0/worker:1#1',
      results: ['y0'],
    });
    expect(end).toEqual([
      { type: 'commit', worker: 'worker:1', runs: [0] },
      { type: 'complete', run: 0, fetches: ['y0'] },
    ]);
    expect(d.coordinator.active).toBe(0);
    expect(d.coordinator.home('w')).toBe('worker:1');

    // Why did p0/worker:1#1 go to worker:1? Its story says, with the stimulus of each decision.
    const story = formatStory(d.coordinator.story('p0/worker:1#1'));
    expect(story).toMatch(
      /\[placed-3\] plan p0 placed -> .*p0\/worker:1#1 on worker:1: 5 nodes \(colocated with variable 'w'/,
    );
    expect(story).toMatch(
      /\[done-\d+\] worker:0 finished p0\/worker:0#0 of run 0 -> send p0\/worker:1#1 of run 0 to worker:1/,
    );
    // A run's story is its dispatches, results and commit, in order.
    const run = d.coordinator.story('run:0').map((e) => e.stimulus);
    expect(run).toEqual(['execute-6', 'done-7', 'done-8']);
    expect(formatStory(d.coordinator.story('w'))).toMatch(/variable 'w' lives on worker:1 \(hint worker:1\)/);
  });

  it('replaces a worker that leaves, once, and tells what was lost with it', () => {
    const d = new Driver();
    d.join('worker:0', 'worker:1');
    placed(d);
    expect(d.handle({ type: 'exited', worker: 'worker:1', message: 'socket closed' })).toEqual([
      { type: 'replace-worker', worker: 'worker:1' },
    ]);
    // The same news again (its thread's exit after its socket's close) decides nothing new.
    expect(d.handle({ type: 'exited', worker: 'worker:1', message: 'process exited' })).toEqual([]);
    expect(d.coordinator.up('worker:1')).toBe(false);
    expect(formatStory(d.coordinator.story('worker:1'))).toMatch(
      /worker:1 exited: socket closed -> replace worker:1; lost with it: partitions p0\/worker:1#1; variables 'w'/,
    );
    // Until it is back, an execution that needs it is refused, naming it.
    const refused = execute(d, 0);
    expect(refused).toEqual([
      {
        type: 'fail',
        run: 0,
        failure: expect.objectContaining({ kind: 'worker-exited', worker: 'worker:1' }),
      },
    ]);
    d.handle({ type: 'joined', worker: 'worker:1', generation: 2, device: 'cpu device' });
    expect(d.coordinator.up('worker:1')).toBe(true);
    // The variable keeps its home: the replacement takes the name and, given values, the variable.
    expect(d.coordinator.home('w')).toBe('worker:1');
    expect(execute(d, 1)[0]).toMatchObject({ type: 'dispatch', run: 1 });
  });

  it('fails the runs that needed a worker that died mid-run, and its story says which and why', () => {
    const d = new Driver();
    d.join('worker:0', 'worker:1');
    placed(d);
    execute(d, 0);
    d.handle({ type: 'done', worker: 'worker:0', run: 0, partition: 'p0/worker:0#0', results: ['h0'] });
    const out = d.handle({ type: 'exited', worker: 'worker:1', message: 'killed' });
    expect(out).toEqual([
      {
        type: 'fail',
        run: 0,
        failure: { kind: 'worker-exited', worker: 'worker:1', partition: 'p0/worker:1#1', message: 'killed' },
      },
      { type: 'release', worker: 'worker:0', runs: [0] },
      { type: 'replace-worker', worker: 'worker:1' },
    ]);
    expect(d.coordinator.active).toBe(0);
    const told = d.coordinator.tell(0, 'worker:1');
    expect(told).toMatch(/send p0\/worker:1#1 of run 0 to worker:1/);
    expect(told).toMatch(
      /worker:1 exited: killed -> run 0 failed: worker 'worker:1' died while running partition p0\/worker:1#1: killed; release run 0 on worker:0; replace worker:1; lost with it/,
    );
  });

  it('takes a worker that hung past a timeout down once, though its end arrives later', () => {
    const d = new Driver();
    d.join('worker:0', 'worker:1');
    placed(d);
    execute(d, 0);
    const out = d.handle({ type: 'timeout', run: 0, millis: 50 });
    expect(out.filter((i) => i.type === 'replace-worker')).toEqual([
      { type: 'replace-worker', worker: 'worker:0' },
    ]);
    expect(out[0]).toMatchObject({
      type: 'fail',
      run: 0,
      failure: { kind: 'timeout', stuck: [{ worker: 'worker:0' }] },
    });
    // The shell ends the hung thread; its exit is no news.
    expect(d.handle({ type: 'exited', worker: 'worker:0', message: 'terminated' })).toEqual([]);
  });

  it('drops results of a run not under way, saying so', () => {
    const d = new Driver();
    d.join('worker:0', 'worker:1');
    placed(d);
    execute(d, 0);
    d.handle({ type: 'cancel', run: 0, message: 'cancelled' });
    expect(
      d.handle({ type: 'done', worker: 'worker:0', run: 0, partition: 'p0/worker:0#0', results: ['h0'] }),
    ).toEqual([]);
    expect(
      d.handle({ type: 'done', worker: 'worker:1', run: 9, partition: 'p0/worker:1#1', results: ['forged'] }),
    ).toEqual([]);
    expect(formatStory(d.coordinator.story('run:9'))).toMatch(
      /worker:1 finished p0\/worker:1#1 of run 9 -> dropped: not a run under way/,
    );
    // One execution per worker at a time: a second on the same workers is refused.
    execute(d, 1);
    expect(execute(d, 2)).toEqual([
      {
        type: 'fail',
        run: 2,
        failure: { kind: 'bad-request', message: 'another execution is under way on worker:0' },
      },
    ]);
  });

  it('runs executions on disjoint workers side by side, each to its own end', () => {
    const d = new Driver();
    d.join('worker:0', 'worker:1');
    const alone = (worker: string, key: string): ScheduledPartition => ({
      key,
      worker,
      stage: 0,
      args: [{ feed: 'x' }],
      returns: [{ values: [], fetches: [0] }],
      reads: [],
      writes: [],
    });
    const on = (run: number, p: ScheduledPartition) =>
      d.handle({
        type: 'execute',
        partitions: [p],
        fetchCount: 1,
        runs: [{ run, feeds: new Map([['x', `x${run}`]]) }],
      });
    expect(on(0, alone('worker:0', 'a/worker:0#0'))).toEqual([
      { type: 'dispatch', worker: 'worker:0', run: 0, partition: 'a/worker:0#0', args: ['x0'] },
    ]);
    expect(on(1, alone('worker:1', 'b/worker:1#0'))).toEqual([
      { type: 'dispatch', worker: 'worker:1', run: 1, partition: 'b/worker:1#0', args: ['x1'] },
    ]);
    expect(d.coordinator.active).toBe(2);
    // The second ends first; each run's results reach its own execution.
    expect(
      d.handle({ type: 'done', worker: 'worker:1', run: 1, partition: 'b/worker:1#0', results: ['y1'] }),
    ).toContainEqual({
      type: 'complete',
      run: 1,
      fetches: ['y1'],
    });
    // A worker lost fails only the execution that holds it.
    const lost = d.handle({ type: 'exited', worker: 'worker:0', message: 'killed' });
    expect(lost.filter((i) => i.type === 'fail').map((i) => ('run' in i ? i.run : -1))).toEqual([0]);
    expect(d.coordinator.active).toBe(0);
  });

  it('keeps the first home of a variable and tells a plan that disagrees', () => {
    const d = new Driver();
    d.join('worker:0', 'worker:1');
    placed(d);
    d.handle({
      type: 'placed',
      plan: 'p1',
      partitions: [],
      variables: [{ name: 'w', worker: 'worker:0', reason: 'earliest finish' }],
    });
    expect(d.coordinator.home('w')).toBe('worker:1');
    expect(formatStory(d.coordinator.story('p1'))).toMatch(
      /variable 'w' lives on worker:1, yet this plan put it on worker:0/,
    );
  });
});

describe('StoryLog', () => {
  it('stays bounded over a long run and keeps the rare entries a failure turns on', () => {
    const log = new StoryLog(100, 10);
    log.add(
      { stimulus: 'joined-1', at: 0, event: 'worker:0 joined', decisions: [], subjects: ['worker:0'] },
      true,
    );
    for (let i = 0; i < 10_000; i++)
      log.add(
        { stimulus: `done-${i}`, at: i, event: 'done', decisions: [], subjects: ['worker:0', `run:${i}`] },
        false,
      );
    const all = log.story();
    expect(all.length).toBeLessThanOrEqual(100 + 25 + 1);
    expect(all[0]!.stimulus).toBe('joined-1');
    expect(all.at(-1)!.stimulus).toBe('done-9999');
    expect(log.story(['run:5'])).toEqual([]);
    expect(log.story(['run:9990']).map((e) => e.stimulus)).toEqual(['done-9990']);
    // Oldest first, across both kinds.
    expect(all.map((e) => e.seq)).toEqual([...all.map((e) => e.seq)].sort((a, b) => a - b));
  });
});
