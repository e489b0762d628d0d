import { KilnError, type KilnErrorCode } from '@kiln/ir';
import { Data } from 'effect';
import type { FromWorker } from './protocol.js';
import type { RunFailure } from './run-scheduler.js';

/** The executors' typed failures, inside the Effect runtime; the Promise API turns them into KilnErrors. */
export class WorkerStartFailed extends Data.TaggedError('WorkerStartFailed')<{
  readonly worker: string;
  readonly message: string;
}> {}

export class WorkerStartTimeout extends Data.TaggedError('WorkerStartTimeout')<{
  readonly worker: string;
  readonly millis: number;
}> {}

export class RunFailed extends Data.TaggedError('RunFailed')<{
  readonly failure: RunFailure;
  /** The coordinator's story of the run (its last decisions), printed under the message. */
  readonly story?: string;
}> {}

export class RequestFailed extends Data.TaggedError('RequestFailed')<{
  readonly worker: string;
  readonly what: string;
  readonly code: string;
  readonly message: string;
}> {}

/** A worker's answer to a request, or the KilnError its refusal stands for. */
export function answered(worker: string, what: string, message: FromWorker): FromWorker {
  if (message.t !== 'failed') return message;
  throw toKilnError(
    new RequestFailed({ worker, what, code: message.error.code, message: message.error.message }),
  );
}

export type ClusterError = WorkerStartFailed | WorkerStartTimeout | RunFailed | RequestFailed;

/** What the caller sees: a KilnError whose message names the worker and, where known, the node. */
export function toKilnError(e: ClusterError): KilnError {
  switch (e._tag) {
    case 'WorkerStartFailed':
      return new KilnError('worker', `worker '${e.worker}' failed to start: ${e.message}`);
    case 'WorkerStartTimeout':
      return new KilnError('timeout', `worker '${e.worker}' did not become ready within ${e.millis} ms`);
    case 'RequestFailed':
      return new KilnError(
        e.code === 'protocol' ? 'protocol' : 'worker',
        `worker '${e.worker}' failed to ${e.what}: ${e.message}`,
      );
    case 'RunFailed': {
      const message = failureMessage(e.failure);
      const code = failureCode(e.failure);
      return new KilnError(
        code,
        e.story ? `${message}\nthe coordinator's story of it:\n${indent(e.story)}` : message,
      );
    }
  }
}

const indent = (text: string) =>
  text
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');

function failureCode(f: RunFailure): KilnErrorCode {
  switch (f.kind) {
    case 'partition-failed':
      return f.code === 'protocol' ? 'protocol' : 'worker';
    case 'worker-exited':
      return 'worker';
    case 'timeout':
      return 'timeout';
    case 'cancelled':
      return 'cancelled';
    case 'bad-request':
      return 'feed';
  }
}

/** Why a run failed, in a sentence that names the worker and, where known, the partition. */
export function failureMessage(f: RunFailure): string {
  switch (f.kind) {
    case 'partition-failed':
      return `worker '${f.worker}' failed running partition ${f.partition}: ${f.message}`;
    case 'worker-exited':
      return `worker '${f.worker}' died${f.partition ? ` while running partition ${f.partition}` : ''}: ${f.message}`;
    case 'timeout': {
      const stuck = f.stuck.map((s) => `worker '${s.worker}' was still running partition ${s.partition}`);
      return stuck.length === 0
        ? `the run did not finish within ${f.millis} ms, though no partition of it was running`
        : `the run did not finish within ${f.millis} ms: ${stuck.join('; ')}; ${stuck.length === 1 ? 'that worker was' : 'those workers were'} taken for hung and replaced, and ${stuck.length === 1 ? 'its' : 'their'} variables lost`;
    }
    case 'cancelled':
    case 'bad-request':
      return f.message;
  }
}
