/**
 * The jobs dashboard: a web page over a job service and its cluster, served on the coordinator's
 * port (JobsCoordinator) or a port of its own (openJobs with `dashboard`).
 */

export { type DashboardServer, type DashboardServerOptions, serveDashboard } from './dashboard-server.js';
export { type DashboardHandler, type DashboardOptions, dashboardHandler } from './handler.js';
export type { Change } from './live-feed.js';
export type { Placement } from './placement.js';
export type { Span, Timeline } from './timeline.js';
export type { JobDetail, JobSummary, Overview, WorkerView } from './views.js';
export type { WorkerHealth } from './worker-health.js';
