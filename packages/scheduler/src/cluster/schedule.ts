import type { TraceEntry } from './worker-pool.js';

/**
 * A trace as a timeline a person reads: one row per worker, one character per time slot, each
 * partition run drawn with its run's digit (or letter), '.' where the worker idled. Pipelining
 * shows as the rows' runs interleaving.
 */
export function formatSchedule(trace: readonly TraceEntry[], width = 72): string {
  if (trace.length === 0) return '(no partition runs)';
  const t0 = Math.min(...trace.map((e) => e.start));
  const t1 = Math.max(...trace.map((e) => e.end));
  const slot = Math.max((t1 - t0) / width, 1e-6);
  const runs = [...new Set(trace.map((e) => e.run))].sort((a, b) => a - b);
  const glyph = (run: number) => '0123456789abcdefghijklmnopqrstuvwxyz'[runs.indexOf(run) % 36]!;
  const workers = [...new Set(trace.map((e) => e.worker))].sort();
  const pad = Math.max(...workers.map((w) => w.length));
  const lines = workers.map((w) => {
    const row = new Array<string>(width).fill('.');
    for (const e of trace.filter((x) => x.worker === w)) {
      const from = Math.min(width - 1, Math.floor((e.start - t0) / slot));
      const to = Math.max(from + 1, Math.min(width, Math.ceil((e.end - t0) / slot)));
      // A slot shows the first run that used it, so very short runs do not hide longer ones.
      for (let i = from; i < to; i++) if (row[i] === '.') row[i] = glyph(e.run);
    }
    const busy = trace.filter((x) => x.worker === w).reduce((s, e) => s + (e.end - e.start), 0);
    return `${w.padEnd(pad)} |${row.join('')}| busy ${((100 * busy) / (t1 - t0)).toFixed(0)}%`;
  });
  lines.push(`${' '.repeat(pad)}  0 ms${' '.repeat(Math.max(0, width - 12))}${(t1 - t0).toFixed(1)} ms`);
  return lines.join('\n');
}
