import type WebSocket from 'ws';
import { RemoteCluster, type RemoteClusterOptions } from '../cluster/remote-cluster.js';
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
}

/**
 * A standalone coordinator with its job service: the remote cluster's port also serves jobs
 * clients at JOBS_PATH. The store opens first, so a bad store file fails before the port opens;
 * jobs clients that arrive before the workers are ready wait for them.
 */
export class JobsCoordinator {
  private constructor(
    readonly cluster: RemoteCluster,
    readonly service: JobService,
    private readonly store: SqliteJobStore,
  ) {}

  static async listen(
    options: JobsCoordinatorOptions,
    onListening?: (url: string) => void,
  ): Promise<JobsCoordinator> {
    const log = options.log ?? stderrLog;
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
            log,
            ...(options.heartbeatMillis !== undefined ? { heartbeatMillis: options.heartbeatMillis } : {}),
          });
          void served.then((service) => new JobsDoor(link, service, log));
        },
      ],
    ]);
    try {
      const cluster = await RemoteCluster.listen({ ...options, log, routes }, onListening);
      const service = await JobService.start(store, cluster, {
        log,
        ...(options.cancelGraceMillis !== undefined ? { cancelGraceMillis: options.cancelGraceMillis } : {}),
      });
      serve(service);
      return new JobsCoordinator(cluster, service, store);
    } catch (e) {
      store.close();
      throw e;
    }
  }

  get url(): string {
    return this.cluster.url;
  }

  /** Stops running jobs (they end STOPPED), then the cluster, then the store. */
  async close(): Promise<void> {
    await this.service.close();
    await this.cluster.close();
    this.store.close();
  }
}
