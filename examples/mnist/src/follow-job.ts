import type { JobHandle } from 'kiln-tensor/jobs';

/**
 * Prints what a job reports, prefixed with its label: log lines and state changes as they come,
 * and its progress (step, loss, samples per second, time left) at most every `everyMillis`, so
 * two jobs followed at once stay readable on a terminal and in a CI log alike.
 */
export async function followJob(label: string, job: JobHandle, everyMillis = 3000): Promise<void> {
  let last = 0;
  for await (const e of job.events()) {
    if (e.type === 'state')
      console.log(
        `${label}: ${e.state}${e.workers ? ` on ${e.workers.join(', ')}` : ''}${e.reason ? `: ${e.reason}` : ''}`,
      );
    else if (e.type === 'log') console.log(`${label}: ${e.message}`);
    else if (e.type === 'progress' && (e.at - last >= everyMillis || e.step === e.steps)) {
      last = e.at;
      const width = 20;
      const filled = Math.round((e.step / e.steps) * width);
      console.log(
        `${label}: [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] step ${e.step}/${e.steps}  epoch ${e.epoch}  loss ${e.loss.toFixed(4)}  ${Math.round(e.samplesPerSecond)} samples/s  ETA ${Math.round(e.etaSeconds)}s`,
      );
    }
  }
}
