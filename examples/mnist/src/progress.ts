/**
 * A progress line for long training: step, loss, samples per second and time left. On a terminal
 * it redraws one line; elsewhere (CI logs) it prints a line every `every` steps.
 */
export class Progress {
  private readonly start = performance.now();
  private readonly tty = process.stderr.isTTY === true;
  private lastPrinted = -Infinity;

  constructor(
    private readonly label: string,
    private readonly totalSteps: number,
    private readonly batchSize: number,
    private readonly every = 25,
  ) {}

  update(step: number, loss: number): void {
    const done = step + 1;
    const seconds = (performance.now() - this.start) / 1000;
    const rate = (done * this.batchSize) / Math.max(seconds, 1e-9);
    const eta = ((this.totalSteps - done) * this.batchSize) / rate;
    const width = 24;
    const filled = Math.round((done / this.totalSteps) * width);
    const bar = `${'#'.repeat(filled)}${'.'.repeat(width - filled)}`;
    const line = `${this.label} [${bar}] step ${done}/${this.totalSteps}  loss ${loss.toFixed(4)}  ${rate.toFixed(0)} samples/s  ETA ${eta.toFixed(0)}s`;
    if (this.tty) process.stderr.write(`\r${line}`);
    else if (done - this.lastPrinted >= this.every || done === this.totalSteps) {
      process.stderr.write(`${line}\n`);
      this.lastPrinted = done;
    }
  }

  finish(): number {
    if (this.tty) process.stderr.write('\n');
    return (performance.now() - this.start) / 1000;
  }
}
