import { ThreadPool, type ThreadPoolOptions } from '../cluster/thread-pool.js';
import { JobService, type JobServiceOptions } from './job-service.js';
import { Jobs } from './jobs-api.js';
import { LocalJobs } from './local-jobs.js';
import { SqliteJobStore } from './sqlite-job-store.js';

export interface OpenJobsOptions extends JobServiceOptions {
  /** The embedded cluster's worker threads (default 2) and their device. */
  readonly cluster?: ThreadPoolOptions;
  /**
   * The job store's SQLite file; jobs, events and metrics outlive the process there. Default
   * ':memory:': the jobs last as long as this process.
   */
  readonly store?: string;
}

/**
 * Jobs on an embedded cluster: a coordinator and worker threads in this process, nothing to
 * start. `close()` stops running jobs, the workers and the store.
 */
export async function openJobs(options: OpenJobsOptions = {}): Promise<Jobs> {
  const store = new SqliteJobStore(options.store ?? ':memory:');
  let pool: ThreadPool | undefined;
  try {
    pool = await ThreadPool.create(options.cluster ?? {});
    const service = await JobService.start(store, pool, options);
    return new Jobs(new LocalJobs(service, { cluster: pool, closeStore: true }));
  } catch (e) {
    await pool?.close();
    store.close();
    throw e;
  }
}
