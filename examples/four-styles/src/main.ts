/**
 * One computation with a data-dependent loop, written in all four styles (five functions: trace
 * and script are the two halves of TorchScript). Each runs on three initial states that need
 * different numbers of steps; each result is compared with the eager one.
 */
import { memory, type Tensor, tidy } from 'kiln-tensor';
import { DECAY, EPSILON, inputs, MAX_STEPS, makeWeights } from './cell.js';
import { compiled, eager, type Style, scripted, symbolic, traced } from './styles.js';

const w = makeWeights();
const xs = inputs();

/** The eager loop's iteration count, for the table only. */
function steps(x: Tensor): number {
  return tidy(() => {
    let n = 0;
    for (let h = x; n < MAX_STEPS && h.mul(h).sum().item() > EPSILON; n++) h = h.matmul(w).tanh().mul(DECAY);
    return n;
  });
}

const styles: [string, Style][] = [
  ['symbolic (while op)', symbolic()],
  ['eager', eager()],
  ['trace (frozen loop)', traced(xs[0]!, w)],
  ['compile', compiled()],
  ['script', scripted()],
];

const reference = await Promise.all(xs.map((x) => eager()(x, w)));
const counts = xs.map(steps);

const rows: string[][] = [];
for (const [name, style] of styles) {
  const cells: string[] = [];
  let totalMs = 0;
  for (const [i, x] of xs.entries()) {
    await style(x, w); // warm: first calls trace or compile
    const start = performance.now();
    const got = await style(x, w);
    totalMs += performance.now() - start;
    const diff = got.reduce((m, v, k) => Math.max(m, Math.abs(v - reference[i]![k]!)), 0);
    cells.push(diff < 1e-5 ? 'correct' : `WRONG (off by ${diff.toPrecision(2)})`);
  }
  rows.push([name, ...cells, `${(totalMs / xs.length).toFixed(2)} ms`]);
}

const header = ['style', ...counts.map((n, i) => `input ${i + 1} (${n} steps)`), 'time per call'];
const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
const line = (cells: string[]) => `| ${cells.map((s, c) => s.padEnd(widths[c]!)).join(' | ')} |`;
console.log(`\nh <- 0.9 tanh(h W) until |h|^2 < 0.05 (at most 60 steps); results compared with eager\n`);
console.log(line(header));
console.log(`|${widths.map((n) => '-'.repeat(n + 2)).join('|')}|`);
for (const r of rows) console.log(line(r));
console.log(
  `\nThe trace recorded input 1's ${counts[0]} steps and replays exactly that many for every input.`,
);
console.log(`Live tensors at the end: ${memory().tensors}`);
