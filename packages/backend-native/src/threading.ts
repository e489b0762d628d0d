import type { KernelFn } from '@kiln/ir';

/** How a native device's kernels use threads. */
export interface Threading {
  /** Threads for OpenBLAS, oneDNN and large programs; 0 for their own default (the cores). */
  readonly threads: number;
  /** Whether long kernels may leave the calling thread in an asynchronous run (see below). */
  readonly offThread: boolean;
}

/**
 * Which native kernels leave the JavaScript thread. A kernel whose work takes a few milliseconds
 * or more runs on the JavaScript thread's kernel thread when a run is asynchronous (the kernel
 * ABI's `offThread`; native/kernel-thread.h, one native thread running such kernels in turn): the
 * JavaScript thread goes on with timers and sockets meanwhile, and a worker thread's peer links
 * keep receiving while it computes. Shorter work stays where it is called, since the hand-off
 * costs two wake-ups of idle threads (the kernel thread to start, the JavaScript thread to settle
 * the promise): 10 µs back to back, but 40-160 µs after a kernel of a millisecond or more on a
 * shared 2-core virtual machine, where an idle core is halted. That was 3-6% of a 512 x 512
 * product (1.4-2.8 ms), which then measured below OpenBLAS called from C; the thresholds keep it
 * near 2% or less. Its own threads (OpenBLAS, oneDNN, the programs' OpenMP) are the device's
 * `threads`, as on the calling thread: the hand-off adds one waiting thread, not a pool of them.
 */

/** Products and convolutions of at least this many flops (5 ms at 200 GFLOP/s). */
export const OFF_THREAD_FLOPS = 2 ** 30;
/** Elementwise programs and copies over at least this many elements (32 MiB of float32). */
export const OFF_THREAD_ELEMENTS = 2 ** 23;

type Arrays = Parameters<KernelFn>[0];

/**
 * The kernel `run`, offering `queued` (the same work off this thread) when it is `worth` it and
 * the device allows it.
 */
export function maybeOffThread(
  threading: Threading,
  worth: boolean,
  run: (inputs: Arrays, outputs: Arrays) => void,
  queued: (inputs: Arrays, outputs: Arrays) => Promise<void>,
): KernelFn {
  return threading.offThread && worth ? Object.assign(run, { offThread: queued }) : run;
}
