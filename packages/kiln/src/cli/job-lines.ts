import type { JobEvent, JobInfo, JobProgress } from '@kiln/scheduler/jobs';

/** Seconds as `1h02m`, `3m05s` or `12s`. */
export function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  if (s >= 3600) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${s}s`;
}

/** One line of progress: a bar on a terminal, the same figures without it in a log. */
export function progressLine(p: JobProgress, bar: boolean): string {
  const width = 24;
  const filled = Math.round((p.step / Math.max(p.steps, 1)) * width);
  const head = bar ? `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ` : '';
  const metrics = Object.entries(p.metrics)
    .map(([k, v]) => `  ${k} ${v.toFixed(4)}`)
    .join('');
  return `${head}step ${p.step}/${p.steps}  epoch ${p.epoch}  loss ${p.loss.toFixed(4)}${metrics}  ${Math.round(p.samplesPerSecond)} samples/s  ETA ${duration(p.etaSeconds)}`;
}

/** An event as a log line (`12:03:04 RUNNING on worker:0`), or undefined for progress. */
export function eventLine(e: JobEvent): string | undefined {
  const time = new Date(e.at).toISOString().slice(11, 19);
  switch (e.type) {
    case 'state':
      return `${time} ${e.state}${e.workers ? ` on ${e.workers.join(', ')}` : ''}${e.reason ? `: ${e.reason}` : ''}`;
    case 'log':
      return `${time} ${e.level === 'info' ? '' : `${e.level}: `}${e.message}`;
    case 'progress':
      return undefined;
  }
}

/** `kiln jobs`: one row per job. */
export function jobsTable(jobs: readonly JobInfo[]): string {
  const rows = jobs.map((j) => [
    j.id,
    j.state + (j.interrupted ? ' (interrupted)' : ''),
    j.name,
    j.workers.length ? j.workers.join(',') : `${j.workersNeeded} ${j.device}`,
    j.progress ? `${j.progress.step}/${j.progress.steps} loss ${j.progress.loss.toFixed(4)}` : '',
    new Date(j.submittedAt).toISOString().replace('T', ' ').slice(0, 19),
  ]);
  const header = ['ID', 'STATE', 'NAME', 'WORKERS', 'PROGRESS', 'SUBMITTED'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [header, ...rows]
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** `kiln status`: what a person wants to know about one job. */
export function statusText(j: JobInfo): string {
  const lines = [
    `job ${j.id}: ${j.name} (${j.kind})`,
    `  state      ${j.state}${j.interrupted ? ' (interrupted)' : ''}${j.reason ? `: ${j.reason}` : ''}`,
    `  workers    ${j.workers.length ? j.workers.join(', ') : `${j.workersNeeded} '${j.device}' worker(s) needed`}`,
    `  submitted  ${new Date(j.submittedAt).toISOString()}`,
  ];
  if (j.startedAt) lines.push(`  started    ${new Date(j.startedAt).toISOString()}`);
  if (j.endedAt) lines.push(`  ended      ${new Date(j.endedAt).toISOString()}`);
  if (j.progress) lines.push(`  progress   ${progressLine(j.progress, false)}`);
  if (j.result) {
    lines.push(
      `  result     ${Object.entries(j.result.metrics)
        .map(([k, v]) => `${k} ${v.toFixed(4)}`)
        .join(', ')} after ${j.result.steps} steps in ${duration(j.result.seconds)}`,
    );
    if (j.result.checkpoint) lines.push(`  checkpoint ${j.result.checkpoint}`);
  }
  return lines.join('\n');
}
