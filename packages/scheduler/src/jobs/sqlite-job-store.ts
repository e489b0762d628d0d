import { KilnError } from '@kiln/ir';
import Database from 'better-sqlite3';
import type { JobEvent, JobEventBody, JobInfo, JobProgress, JobResult, JobState } from './job-events.js';
import type { JobStore, NewJob, TransitionFields } from './job-store.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS jobs (
  id INTEGER PRIMARY KEY,
  submission_id TEXT UNIQUE,
  name TEXT NOT NULL,
  kind TEXT NOT NULL,
  device TEXT NOT NULL,
  workers_needed INTEGER NOT NULL,
  spec BLOB NOT NULL,
  state TEXT NOT NULL,
  workers TEXT NOT NULL DEFAULT '[]',
  submitted_at INTEGER NOT NULL,
  started_at INTEGER,
  ended_at INTEGER,
  reason TEXT,
  interrupted INTEGER NOT NULL DEFAULT 0,
  progress TEXT,
  result TEXT,
  last_seq INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS events (
  job_id INTEGER NOT NULL REFERENCES jobs(id),
  seq INTEGER NOT NULL,
  at INTEGER NOT NULL,
  body TEXT NOT NULL,
  PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS metrics (
  job_id INTEGER NOT NULL REFERENCES jobs(id),
  name TEXT NOT NULL,
  step INTEGER NOT NULL,
  value REAL NOT NULL,
  PRIMARY KEY (job_id, name, step)
) WITHOUT ROWID;
`;

/** The schema's version, in SQLite's user_version: a file from another version is refused. */
const SCHEMA_VERSION = 1;

interface JobRow {
  id: number;
  submission_id: string | null;
  name: string;
  kind: 'train' | 'run';
  device: string;
  workers_needed: number;
  state: JobState;
  workers: string;
  submitted_at: number;
  started_at: number | null;
  ended_at: number | null;
  reason: string | null;
  interrupted: number;
  progress: string | null;
  result: string | null;
  last_seq: number;
}

const LISTED =
  'id, submission_id, name, kind, device, workers_needed, state, workers, submitted_at, started_at, ended_at, reason, interrupted, progress, result, last_seq';

/**
 * The job store on SQLite (better-sqlite3): one file, WAL journal so readers never wait for the
 * writer, `synchronous = FULL` so a transaction that returned survives a crash of the process or
 * the machine. better-sqlite3 is synchronous, which suits a store whose transactions are small:
 * no callbacks interleave inside one, and a submit is on disk before its promise resolves.
 */
export class SqliteJobStore implements JobStore {
  private readonly database: Database.Database;
  private readonly statements;

  /** Opens (or creates) the store at `path` (`:memory:` for one that lives with the process). */
  constructor(readonly path: string) {
    try {
      this.database = new Database(path);
      this.database.pragma('journal_mode = WAL');
      this.database.pragma('synchronous = FULL');
      this.database.pragma('foreign_keys = ON');
      this.database.pragma('busy_timeout = 5000');
      const version = this.database.pragma('user_version', { simple: true }) as number;
      if (version !== 0 && version !== SCHEMA_VERSION)
        throw new KilnError(
          'invalid-argument',
          `job store ${path}: schema version ${version}; this kiln reads version ${SCHEMA_VERSION}`,
        );
      this.database.exec(SCHEMA);
      this.database.pragma(`user_version = ${SCHEMA_VERSION}`);
    } catch (e) {
      if (e instanceof KilnError) throw e;
      throw new KilnError('invalid-argument', `job store ${path}: ${(e as Error).message}`, { cause: e });
    }
    const db = this.database;
    this.statements = {
      bySubmission: db.prepare(`SELECT ${LISTED} FROM jobs WHERE submission_id = ?`),
      byId: db.prepare(`SELECT ${LISTED} FROM jobs WHERE id = ?`),
      all: db.prepare(`SELECT ${LISTED} FROM jobs ORDER BY id`),
      insert: db.prepare(
        `INSERT INTO jobs (submission_id, name, kind, device, workers_needed, spec, state, submitted_at)
         VALUES (?, ?, ?, ?, ?, ?, 'PENDING', ?)`,
      ),
      spec: db.prepare('SELECT spec FROM jobs WHERE id = ?'),
      setState: db.prepare(
        `UPDATE jobs SET state = ?, workers = COALESCE(?, workers), reason = COALESCE(?, reason),
           result = COALESCE(?, result),
           started_at = CASE WHEN ? = 'RUNNING' THEN ? ELSE started_at END,
           ended_at = CASE WHEN ? IN ('SUCCEEDED', 'FAILED', 'STOPPED') THEN ? ELSE ended_at END
         WHERE id = ?`,
      ),
      setProgress: db.prepare('UPDATE jobs SET progress = ? WHERE id = ?'),
      bumpSeq: db.prepare('UPDATE jobs SET last_seq = last_seq + 1 WHERE id = ? RETURNING last_seq'),
      insertEvent: db.prepare('INSERT INTO events (job_id, seq, at, body) VALUES (?, ?, ?, ?)'),
      events: db.prepare(
        'SELECT seq, at, body FROM events WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?',
      ),
      insertMetric: db.prepare(
        'INSERT OR REPLACE INTO metrics (job_id, name, step, value) VALUES (?, ?, ?, ?)',
      ),
      metric: db.prepare('SELECT step, value FROM metrics WHERE job_id = ? AND name = ? ORDER BY step'),
      running: db.prepare(`SELECT id FROM jobs WHERE state = 'RUNNING'`),
      interrupt: db.prepare(
        `UPDATE jobs SET state = 'FAILED', interrupted = 1, ended_at = ?, reason = ? WHERE id = ?`,
      ),
      pending: db.prepare(`SELECT ${LISTED} FROM jobs WHERE state = 'PENDING' ORDER BY id`),
      requeue: db.prepare(`UPDATE jobs SET state = 'PENDING', workers = '[]' WHERE id = ?`),
    };
  }

  submit(job: NewJob): { job: JobInfo; created: boolean } {
    return this.database.transaction(() => {
      if (job.submissionId !== undefined) {
        const found = this.statements.bySubmission.get(job.submissionId) as JobRow | undefined;
        if (found) return { job: toInfo(found), created: false };
      }
      const now = Date.now();
      const { lastInsertRowid } = this.statements.insert.run(
        job.submissionId ?? null,
        job.name,
        job.kind,
        job.device,
        job.workersNeeded,
        job.spec,
        now,
      );
      const id = String(lastInsertRowid);
      this.appendOne(id, { type: 'state', state: 'PENDING' }, now);
      return { job: this.job(id)!, created: true };
    })();
  }

  transition(id: string, state: JobState, fields: TransitionFields = {}): JobEvent {
    return this.database.transaction(() => {
      const now = Date.now();
      const changed = this.statements.setState.run(
        state,
        fields.workers ? JSON.stringify(fields.workers) : null,
        fields.reason ?? null,
        fields.result ? JSON.stringify(fields.result) : null,
        state,
        now,
        state,
        now,
        Number(id),
      ).changes;
      if (changed === 0) throw new KilnError('invalid-argument', `job store: no job ${id}`);
      return this.appendOne(
        id,
        {
          type: 'state',
          state,
          ...(fields.reason !== undefined ? { reason: fields.reason } : {}),
          ...(fields.workers ? { workers: fields.workers } : {}),
        },
        now,
      );
    })();
  }

  append(id: string, events: readonly JobEventBody[]): JobEvent[] {
    return this.database.transaction(() => {
      const now = Date.now();
      const out = events.map((e) => this.appendOne(id, e, now));
      const progress = events.findLast((e) => e.type === 'progress');
      if (progress) {
        const { type: _, ...latest } = progress;
        this.statements.setProgress.run(JSON.stringify(latest), Number(id));
      }
      return out;
    })();
  }

  recordMetrics(id: string, points: readonly (readonly [number, string, number])[]): void {
    this.database.transaction(() => {
      for (const [step, name, value] of points)
        this.statements.insertMetric.run(Number(id), name, step, value);
    })();
  }

  job(id: string): JobInfo | undefined {
    if (!/^\d{1,15}$/.test(id)) return undefined;
    const row = this.statements.byId.get(Number(id)) as JobRow | undefined;
    return row && toInfo(row);
  }

  jobs(): JobInfo[] {
    return (this.statements.all.all() as JobRow[]).map(toInfo);
  }

  spec(id: string): Uint8Array | undefined {
    const row = this.statements.spec.get(Number(id)) as { spec: Buffer } | undefined;
    return row && new Uint8Array(row.spec.buffer, row.spec.byteOffset, row.spec.byteLength);
  }

  events(id: string, after = 0, limit = 10_000): JobEvent[] {
    const rows = this.statements.events.all(Number(id), after, limit) as {
      seq: number;
      at: number;
      body: string;
    }[];
    return rows.map((r) => ({ ...(JSON.parse(r.body) as JobEventBody), job: id, seq: r.seq, at: r.at }));
  }

  metric(id: string, name: string): [number, number][] {
    return (this.statements.metric.all(Number(id), name) as { step: number; value: number }[]).map((r) => [
      r.step,
      r.value,
    ]);
  }

  recover(resumes?: (id: string) => string | undefined): JobInfo[] {
    return this.database.transaction(() => {
      const now = Date.now();
      for (const { id } of this.statements.running.all() as { id: number }[]) {
        const why = resumes?.(String(id));
        if (why !== undefined) {
          this.statements.requeue.run(id);
          this.appendOne(String(id), { type: 'log', level: 'warn', message: why }, now);
          this.appendOne(String(id), { type: 'state', state: 'PENDING' }, now);
          continue;
        }
        const reason = 'interrupted: the coordinator stopped while the job ran';
        this.statements.interrupt.run(now, reason, id);
        this.appendOne(String(id), { type: 'state', state: 'FAILED', reason }, now);
      }
      return (this.statements.pending.all() as JobRow[]).map(toInfo);
    })();
  }

  close(): void {
    if (this.database.open) this.database.close();
  }

  /** The database itself, for checks (integrity, pragmas) and tests; not for writing jobs. */
  db(): Database.Database {
    return this.database;
  }

  private appendOne(id: string, body: JobEventBody, at: number): JobEvent {
    const bumped = this.statements.bumpSeq.get(Number(id)) as { last_seq: number } | undefined;
    if (!bumped) throw new KilnError('invalid-argument', `job store: no job ${id}`);
    this.statements.insertEvent.run(Number(id), bumped.last_seq, at, JSON.stringify(body));
    return { ...body, job: id, seq: bumped.last_seq, at };
  }
}

function toInfo(row: JobRow): JobInfo {
  return {
    id: String(row.id),
    ...(row.submission_id !== null ? { submissionId: row.submission_id } : {}),
    name: row.name,
    kind: row.kind,
    state: row.state,
    device: row.device,
    workersNeeded: row.workers_needed,
    workers: JSON.parse(row.workers) as string[],
    submittedAt: row.submitted_at,
    ...(row.started_at !== null ? { startedAt: row.started_at } : {}),
    ...(row.ended_at !== null ? { endedAt: row.ended_at } : {}),
    ...(row.reason !== null ? { reason: row.reason } : {}),
    interrupted: row.interrupted === 1,
    ...(row.progress !== null ? { progress: JSON.parse(row.progress) as JobProgress } : {}),
    ...(row.result !== null ? { result: JSON.parse(row.result) as JobResult } : {}),
    events: row.last_seq,
  };
}
