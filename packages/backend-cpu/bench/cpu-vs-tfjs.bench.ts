/**
 * backend-cpu against @tensorflow/tfjs-backend-cpu, in one process, on the same inputs.
 *
 *   npm run bench -w packages/backend-cpu
 *
 * Prints a table of median latencies and speedups (tfjs median / kiln median) and writes it as
 * JSON to bench-results/cpu-vs-tfjs.json. Speed goals are ratios against the peer measured in the
 * same run, so they hold on any machine; absolute times are only for the reader.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { CpuDevice } from '@kiln/backend-cpu';
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { CASES } from './cases.js';
import { agree, measurePair } from './harness.js';

interface Row {
  readonly case: string;
  readonly kilnMedianMs: number;
  readonly tfjsMedianMs: number;
  readonly speedup: number;
  readonly goal: number | null;
  readonly met: boolean | null;
  readonly samples: { readonly kiln: number; readonly tfjs: number };
  readonly maxAbsDiff: number;
}

// Production mode silences tfjs's "install tfjs-node" banner; it changes no kernel.
tf.enableProdMode();
await tf.setBackend('cpu');
await tf.ready();

const device = new CpuDevice();
const rows: Row[] = [];
const started = performance.now();

for (const c of CASES) {
  const tensorsBefore = tf.memory().numTensors;
  const { kiln, tfjs } = c.make(device);
  try {
    const check = agree(kiln.result(), tfjs.result(), c.atol, c.rtol);
    if (!check.ok)
      throw new Error(
        `${c.name}: kiln and tfjs disagree, so timing them would compare different work: ${check.message}`,
      );
    const m = measurePair(c.budget, kiln, tfjs);
    const speedup = m.tfjs.median / m.kiln.median;
    const row: Row = {
      case: c.name,
      kilnMedianMs: m.kiln.median,
      tfjsMedianMs: m.tfjs.median,
      speedup,
      goal: c.goal ?? null,
      met: c.goal === undefined ? null : speedup >= c.goal,
      samples: { kiln: m.kiln.samples.length, tfjs: m.tfjs.samples.length },
      maxAbsDiff: check.maxAbsDiff,
    };
    rows.push(row);
    console.log(
      `${c.name}: kiln ${fmtMs(row.kilnMedianMs)} ms, tfjs ${fmtMs(row.tfjsMedianMs)} ms, x${row.speedup.toFixed(2)} (${check.message})`,
    );
  } finally {
    kiln.dispose();
    tfjs.dispose();
  }
  const leaked = tf.memory().numTensors - tensorsBefore;
  if (leaked !== 0) throw new Error(`${c.name}: the tfjs side leaked ${leaked} tensors`);
}

const seconds = (performance.now() - started) / 1000;
console.log(`\n${formatTable(rows)}\n`);
console.log(
  `medians over interleaved rounds; node ${process.version}, ${cpus()[0]?.model ?? 'unknown cpu'} (${cpus().length} cores); ${seconds.toFixed(0)} s`,
);

const missed = rows.filter((r) => r.met === false);
if (missed.length > 0) console.log(`goal missed: ${missed.map((r) => r.case).join(', ')}`);

const dir = new URL('../bench-results/', import.meta.url);
mkdirSync(dir, { recursive: true });
const file = new URL('cpu-vs-tfjs.json', dir);
const report = {
  bench: 'cpu-vs-tfjs',
  date: new Date().toISOString(),
  node: process.version,
  cpu: cpus()[0]?.model ?? null,
  cores: cpus().length,
  tfjs: tf.version_core,
  statistic: 'median latency in ms; speedup = tfjs median / kiln median',
  rows,
};
writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
console.log(`wrote ${file.pathname}`);

function fmtMs(ms: number): string {
  return ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2);
}

function formatTable(data: readonly Row[]): string {
  const header = ['case', 'kiln median ms', 'tfjs median ms', 'speedup (tfjs/kiln)', 'goal', 'met'];
  const body = data.map((r) => [
    r.case,
    fmtMs(r.kilnMedianMs),
    fmtMs(r.tfjsMedianMs),
    `${r.speedup.toFixed(2)}x`,
    r.goal === null ? '-' : `>= ${r.goal}x`,
    r.met === null ? '-' : r.met ? 'yes' : 'NO',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((cells) => cells[i]!.length)));
  const line = (cells: readonly string[]) =>
    `| ${cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join(' | ')} |`;
  // The separator row as biome formats markdown tables, so the output pastes into a README as is.
  const rule = `| ${widths.map((w, i) => (i === 0 ? '-'.repeat(w) : `${'-'.repeat(w - 1)}:`)).join(' | ')} |`;
  return [line(header), rule, ...body.map(line)].join('\n');
}
