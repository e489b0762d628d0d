import { spawn } from 'node:child_process';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteJobStore } from '../../src/jobs/index.js';
import { tempDir } from './fixtures.js';

const WRITER = new URL('./fixtures/store-writer.ts', import.meta.url).pathname;
const spec = new Uint8Array([1, 2, 3]);
const newJob = (name: string, submissionId?: string) => ({
  name,
  kind: 'train' as const,
  device: 'cpu',
  workersNeeded: 1,
  spec,
  ...(submissionId ? { submissionId } : {}),
});

describe('SqliteJobStore', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  const open = async () => {
    const tmp = await tempDir();
    cleanups.push(tmp.remove);
    return join(tmp.dir, 'jobs.sqlite');
  };

  it('queues again, in order, the RUNNING jobs the restarted service says can resume', async () => {
    const path = await open();
    const store = new SqliteJobStore(path);
    const a = store.submit(newJob('a')).job;
    const b = store.submit(newJob('b')).job;
    const c = store.submit(newJob('c')).job;
    store.transition(a.id, 'RUNNING', { workers: ['worker:0'] });
    store.transition(b.id, 'RUNNING', { workers: ['worker:1'] });
    store.close();

    const again = new SqliteJobStore(path);
    cleanups.push(() => again.close());
    const pending = again.recover((id) => (id === b.id ? 'resumes from its commit' : undefined));
    expect(pending.map((j) => j.id)).toEqual([b.id, c.id]);
    expect(again.job(a.id)).toMatchObject({ state: 'FAILED', interrupted: true });
    expect(again.job(b.id)).toMatchObject({ state: 'PENDING', interrupted: false, workers: [] });
    expect(
      again.events(b.id).map((e) => (e.type === 'log' ? e.message : e.type === 'state' ? e.state : e.type)),
    ).toEqual(['PENDING', 'RUNNING', 'resumes from its commit', 'PENDING']);
  });

  it('keeps jobs, their history and metrics across a restart; RUNNING ones come back interrupted', async () => {
    const path = await open();
    const store = new SqliteJobStore(path);
    const a = store.submit(newJob('a')).job;
    const b = store.submit(newJob('b')).job;
    const c = store.submit(newJob('c')).job;
    store.transition(a.id, 'RUNNING', { workers: ['worker:0'] });
    store.append(a.id, [{ type: 'log', level: 'info', message: 'hello' }]);
    store.recordMetrics(a.id, [
      [1, 'loss', 2],
      [2, 'loss', 1],
    ]);
    store.transition(b.id, 'RUNNING', { workers: ['worker:1'] });
    store.transition(b.id, 'SUCCEEDED', { result: { metrics: { loss: 0.5 }, steps: 2, seconds: 1 } });
    store.close();

    const again = new SqliteJobStore(path);
    cleanups.push(() => again.close());
    const pending = again.recover();
    expect(pending.map((j) => j.id)).toEqual([c.id]);
    const [ja, jb, jc] = again.jobs();
    expect(ja).toMatchObject({ state: 'FAILED', interrupted: true, workers: ['worker:0'] });
    expect(ja!.reason).toMatch(/interrupted/);
    expect(again.events(a.id).map((e) => (e.type === 'state' ? e.state : e.type))).toEqual([
      'PENDING',
      'RUNNING',
      'log',
      'FAILED',
    ]);
    expect(again.metric(a.id, 'loss')).toEqual([
      [1, 2],
      [2, 1],
    ]);
    expect(jb).toMatchObject({ state: 'SUCCEEDED', interrupted: false, result: { metrics: { loss: 0.5 } } });
    expect(jc!.state).toBe('PENDING');
    expect(again.spec(c.id)).toEqual(spec);
    expect(again.db().pragma('journal_mode', { simple: true })).toBe('wal');
  });

  it('gives the first job for a repeated submission id', async () => {
    const store = new SqliteJobStore(await open());
    cleanups.push(() => store.close());
    const first = store.submit(newJob('x', 'same'));
    const second = store.submit(newJob('y', 'same'));
    expect(first.created).toBe(true);
    expect(second).toEqual({ job: first.job, created: false });
    expect(store.jobs()).toHaveLength(1);
  });

  it('refuses a file that is not a job store, naming it', async () => {
    const path = await open();
    const other = new Database(path);
    other.pragma('user_version = 99');
    other.close();
    expect(() => new SqliteJobStore(path)).toThrow(
      `job store ${path}: schema version 99; this kiln reads version 1`,
    );
  });

  it('loses nothing it acknowledged when its process is killed during writes', async () => {
    const path = await open();
    const child = spawn(process.execPath, ['--conditions=@kiln/source', '--import', 'tsx', WRITER, path], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    cleanups.push(() => {
      child.kill('SIGKILL');
    });
    const acked = new Map<string, number>();
    let out = '';
    let err = '';
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
    });
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        for (const m of out.matchAll(/acked (\d+) (\d+)\n/g)) acked.set(m[1]!, Number(m[2]));
        // Kill it mid-stream, after it has written a good many jobs.
        if (acked.size >= 40) {
          child.kill('SIGKILL');
          resolve();
        }
      });
      child.once('exit', (code) =>
        acked.size >= 40 ? resolve() : reject(new Error(`writer exited ${code}: ${err}`)),
      );
    });
    await new Promise((resolve) =>
      child.exitCode !== null || child.signalCode ? resolve(null) : child.once('exit', resolve),
    );

    const store = new SqliteJobStore(path);
    cleanups.push(() => store.close());
    expect(store.db().pragma('integrity_check', { simple: true })).toBe('ok');
    store.recover();
    for (const [id, lastSeq] of acked) {
      const job = store.job(id)!;
      expect(job, `job ${id}`).toBeDefined();
      expect(store.events(id).length).toBeGreaterThanOrEqual(lastSeq);
      expect(store.metric(id, 'loss')).toHaveLength(20);
      // Every other job was RUNNING when its writer died: now FAILED and interrupted.
      if (Number(id) % 2 === 1) expect(job).toMatchObject({ state: 'FAILED', interrupted: true });
    }
  });
});
