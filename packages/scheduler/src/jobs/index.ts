/**
 * Jobs: training runs and graph runs submitted as data, queued by the workers they need, run on
 * the cluster, kept in SQLite. Node-only (better-sqlite3, files), so it is its own entry point,
 * `@kiln/scheduler/jobs`, and the browser bundle never sees it.
 */

export {
  type DashboardHandler,
  type DashboardOptions,
  type DashboardServer,
  type DashboardServerOptions,
  dashboardHandler,
  serveDashboard,
} from '../dashboard/index.js';
export {
  isFinished,
  JOB_STATES,
  type JobEvent,
  type JobEventBody,
  type JobInfo,
  type JobProgress,
  type JobResult,
  type JobState,
} from './job-events.js';
export { loadJobFile } from './job-file.js';
export { jobsToStart, neverFits, type QueuedJob } from './job-queue.js';
export { type JobContext, JobFailed, type RunOutcome, runJob } from './job-runner.js';
export { DEFAULT_CANCEL_GRACE_MILLIS, JobService, type JobServiceOptions } from './job-service.js';
export {
  type DatasetRef,
  type JobSpec,
  type JobSpecInput,
  type OptimizerSpec,
  type Parallelism,
  parseJobSpec,
  type RunJobSpec,
  type TrainJobSpec,
  workersNeeded,
} from './job-spec.js';
export type { JobStore, NewJob } from './job-store.js';
export { type EventsFrom, JobHandle, Jobs, type JobsBackend } from './jobs-api.js';
export { JobsCoordinator, type JobsCoordinatorOptions } from './jobs-coordinator.js';
export { JOBS_PATH, JOBS_PROTOCOL_VERSION } from './jobs-protocol.js';
export { followJob, LocalJobs } from './local-jobs.js';
export {
  type EmbeddedDashboardOptions,
  type OpenedJobs,
  type OpenJobsOptions,
  openJobs,
} from './open-jobs.js';
export { type ConnectJobsOptions, connectJobs, RemoteJobs } from './remote-jobs.js';
export { SqliteJobStore } from './sqlite-job-store.js';
