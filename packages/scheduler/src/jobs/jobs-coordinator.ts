import type { IncomingMessage, ServerResponse } from 'node:http';
import type WebSocket from 'ws';
import { RemoteCluster, type RemoteClusterOptions } from '../cluster/remote-cluster.js';
import { assets } from '../dashboard/assets.js';
import { type DashboardHandler, dashboardHandler } from '../dashboard/handler.js';
import { sendText } from '../dashboard/responses.js';
import { FrameLink } from '../net/link.js';
import { stderrLog } from '../net/log.js';
import { JobService } from './job-service.js';
import { JobsDoor } from './jobs-door.js';
import { decodeToJobs, encodeJobsFrame, type FromJobs, JOBS_PATH, type ToJobs } from './jobs-protocol.js';
import { SqliteJobStore } from './sqlite-job-store.js';

export interface JobsCoordinatorOptions extends RemoteClusterOptions {
  /** The job store's SQLite file. */
  readonly store: string;
  readonly cancelGraceMillis?: number;
  /**
   * Serve the jobs dashboard to browsers on the same port, behind the same token (default true).
   * Off, plain HTTP requests get 426 as on a bare cluster port.
   */
  readonly dashboard?: boolean;
}

/**
 * A standalone coordinator with its job service: the remote cluster's port also serves jobs
 * clients at JOBS_PATH, and browsers the dashboard (plain HTTP, same token). The store opens
 * first, so a bad store file fails before the port opens; jobs clients that arrive before the
 * workers are ready wait for them.
 */
export class JobsCoordinator {
  private constructor(
    readonly cluster: RemoteCluster,
    readonly service: JobService,
    private readonly store: SqliteJobStore,
    private readonly dashboard: DashboardHandler | undefined,
  ) {}

  static async listen(
    options: JobsCoordinatorOptions,
    onListening?: (url: string) => void,
  ): Promise<JobsCoordinator> {
    const log = options.log ?? stderrLog;
    // The dashboard's files are read before anything opens: a broken install fails here, whole.
    if (options.dashboard !== false) assets();
    const store = new SqliteJobStore(options.store);
    let serve: (service: JobService) => void = () => {};
    const served = new Promise<JobService>((resolve) => {
      serve = resolve;
    });
    const routes = new Map([
      [
        JOBS_PATH,
        (ws: WebSocket, peer: string) => {
          const link = new FrameLink<ToJobs, FromJobs>(ws, encodeJobsFrame, {
            peer: `jobs client at ${peer}`,
            decode: (frame) => decodeToJobs(frame, options.maxFrameBytes),
            ...(options.maxFrameBytes !== undefined ? { maxFrameBytes: options.maxFrameBytes } : {}),
            log,
            ...(options.heartbeatMillis !== undefined ? { heartbeatMillis: options.heartbeatMillis } : {}),
          });
          void served.then((service) => new JobsDoor(link, service, log));
        },
      ],
    ]);
    // The port opens before the workers join, and the service starts after: until then a browser
    // is told to come back, not shown a dashboard of nothing.
    let dashboard: DashboardHandler | undefined;
    const onRequest =
      options.dashboard === false
        ? undefined
        : (req: IncomingMessage, res: ServerResponse) => {
            if (dashboard) dashboard(req, res);
            else
              sendText(res, 503, 'kiln: the coordinator is starting: its workers have not all joined yet', {
                'retry-after': '2',
              });
          };
    try {
      const cluster = await RemoteCluster.listen(
        { ...options, log, routes, ...(onRequest ? { onRequest } : {}) },
        onListening,
      );
      const service = await JobService.start(store, cluster, {
        log,
        ...(options.cancelGraceMillis !== undefined ? { cancelGraceMillis: options.cancelGraceMillis } : {}),
      });
      serve(service);
      if (onRequest)
        dashboard = dashboardHandler(service, cluster, {
          log,
          ...(options.token !== undefined ? { token: options.token } : {}),
        });
      return new JobsCoordinator(cluster, service, store, dashboard);
    } catch (e) {
      store.close();
      throw e;
    }
  }

  get url(): string {
    return this.cluster.url;
  }

  /** Where a browser opens the dashboard: http(s)://host:port/ (undefined when it is off). */
  get dashboardUrl(): string | undefined {
    return this.dashboard ? `${this.cluster.url.replace(/^ws/, 'http')}/` : undefined;
  }

  /** Stops running jobs (they end STOPPED), then the dashboard, the cluster, and the store. */
  async close(): Promise<void> {
    await this.service.close();
    this.dashboard?.close();
    await this.cluster.close();
    this.store.close();
  }
}
