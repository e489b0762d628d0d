import { parentPort, workerData } from 'node:worker_threads';
import { KilnError } from '@kiln/ir';
import { resolveLimits } from '../limits/limits.js';
import { type DeviceSpec, type FromWorker, parseToWorker } from './protocol.js';
import { WorkerRuntime } from './worker-runtime.js';

/**
 * The entry point of a worker thread: protocol messages in from the coordinator's MessagePort,
 * handled strictly one after another, replies out. Tensor bytes arrive and leave in
 * SharedArrayBuffers, so posting them copies nothing.
 */
const port = parentPort;
if (!port) throw new KilnError('runtime', 'worker-main must run in a worker thread');

// The thread's start data is its command line: the device it serves and its limits.
const start = workerData as { device: DeviceSpec; limits?: object };
const runtime = new WorkerRuntime(start.device, resolveLimits(start.limits));
let queue: Promise<void> = Promise.resolve();

port.on('message', (raw: unknown) => {
  queue = queue.then(async () => {
    let reply: FromWorker | null;
    let closing = false;
    try {
      const message = parseToWorker(raw);
      closing = message.t === 'close';
      reply = await runtime.handle(message);
    } catch (e) {
      // A malformed message: answer it so the coordinator can tell whose fault it was.
      reply = {
        t: 'failed',
        run: null,
        partition: null,
        request: null,
        error: {
          code: e instanceof KilnError ? e.code : 'protocol',
          message: e instanceof Error ? e.message : String(e),
        },
      };
    }
    if (reply) port.postMessage(reply);
    if (closing) port.close();
  });
});
