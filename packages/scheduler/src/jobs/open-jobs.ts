import type { Cluster } from '../cluster/cluster.js';
import { ThreadPool, type ThreadPoolOptions } from '../cluster/thread-pool.js';
import {
  checkDashboardAddress,
  type DashboardServer,
  type DashboardServerOptions,
  serveDashboard,
} from '../dashboard/dashboard-server.js';
import { type DashboardHandler, dashboardHandler } from '../dashboard/handler.js';
import { JobService, type JobServiceOptions } from './job-service.js';
import { Jobs } from './jobs-api.js';
import { LocalJobs } from './local-jobs.js';
import { SqliteJobStore } from './sqlite-job-store.js';

/** Where the embedded dashboard listens, and the token it asks for (needed off loopback). */
export interface EmbeddedDashboardOptions extends DashboardServerOptions {
  readonly token?: string;
}

export interface OpenJobsOptions extends JobServiceOptions {
  /** The embedded cluster's worker threads (default 2) and their device. */
  readonly cluster?: ThreadPoolOptions;
  /**
   * The job store's SQLite file; jobs, events and metrics outlive the process there. Default
   * ':memory:': the jobs last as long as this process.
   */
  readonly store?: string;
  /**
   * Serve the jobs dashboard on a port of its own: `true` for 127.0.0.1 on a free port, or where.
   * Read its address from the returned jobs' `dashboardUrl`.
   */
  readonly dashboard?: boolean | EmbeddedDashboardOptions;
}

/** What openJobs returns: the jobs, and where their dashboard is when one was asked for. */
export type OpenedJobs = Jobs & {
  /** http://127.0.0.1:port/ when `dashboard` was given. */
  readonly dashboardUrl?: string;
};

/**
 * Jobs on an embedded cluster: a coordinator and worker threads in this process, nothing to
 * start. `close()` stops running jobs, the workers, the store, and the dashboard if any.
 */
export async function openJobs(options: OpenJobsOptions = {}): Promise<OpenedJobs> {
  const where = options.dashboard === true ? {} : options.dashboard || undefined;
  // A dashboard that may not open fails before any worker starts.
  if (where) checkDashboardAddress(where);
  const store = new SqliteJobStore(options.store ?? ':memory:');
  let pool: ThreadPool | undefined;
  let service: JobService | undefined;
  try {
    pool = await ThreadPool.create(options.cluster ?? {});
    service = await JobService.start(store, pool, options);
    if (!where) return new Jobs(new LocalJobs(service, { cluster: pool, closeStore: true }));
    const handler = dashboardHandler(service, pool, where.token !== undefined ? { token: where.token } : {});
    const server = await serveDashboard(handler, where).catch((e: unknown) => {
      handler.close();
      throw e;
    });
    const jobs = new Jobs(new DashboardedJobs(service, pool, handler, server));
    return Object.assign(jobs, { dashboardUrl: server.url });
  } catch (e) {
    await service?.close();
    await pool?.close();
    store.close();
    throw e;
  }
}

/** LocalJobs that also owns a dashboard: closing ends its page streams and port first. */
class DashboardedJobs extends LocalJobs {
  constructor(
    service: JobService,
    cluster: Cluster,
    private readonly handler: DashboardHandler,
    private readonly server: DashboardServer,
  ) {
    super(service, { cluster, closeStore: true });
  }

  override async close(): Promise<void> {
    this.handler.close();
    await this.server.close();
    await super.close();
  }
}
