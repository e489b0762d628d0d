/**
 * kiln-tensor/jobs: training runs and graph runs submitted as data to a coordinator, embedded
 * (`openJobs`: worker threads in this process, nothing to start) or standalone (`connectJobs`:
 * `kiln coordinator`), and the datasets they read (safetensors). Node-only: the browser bundle
 * never imports it. Importing it makes the CPU device the workers' default, as the main entry does.
 */
import './index.js';

export {
  Dataset,
  type DatasetTensor,
  epochOrder,
  openSafetensors,
  SafetensorsFile,
  writeSafetensors,
} from '@kiln/scheduler/data';
export {
  type ConnectJobsOptions,
  connectJobs,
  type DashboardHandler,
  type DashboardOptions,
  type DatasetRef,
  dashboardHandler,
  type EmbeddedDashboardOptions,
  type EventsFrom,
  isFinished,
  type JobEvent,
  JobHandle,
  type JobInfo,
  type JobProgress,
  type JobResult,
  type JobSpec,
  type JobSpecInput,
  type JobState,
  Jobs,
  JobsCoordinator,
  type JobsCoordinatorOptions,
  loadJobFile,
  type OpenedJobs,
  type OpenJobsOptions,
  type OptimizerSpec,
  openJobs,
  type Parallelism,
  type RunJobSpec,
  type TrainJobSpec,
} from '@kiln/scheduler/jobs';
