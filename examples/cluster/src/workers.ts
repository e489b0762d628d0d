import { type ChildProcess, spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';

/** The kiln command of this checkout (built or from its sources: its bin knows which). */
const KILN = new URL('../../../packages/kiln/bin/kiln.js', import.meta.url).pathname;
/**
 * Run from the sources when this process is (as the tests and benchmarks are), so the workers run
 * the code under test and never a stale build; otherwise the bin picks.
 */
const NODE_FLAGS = process.execArgv.includes('--conditions=@kiln/source')
  ? ['--conditions=@kiln/source', '--import', 'tsx']
  : [];

/**
 * glibc's allocator settings for a worker process, as the README recommends for any `kiln worker`
 * on Linux: large buffers (ws's received messages, the kernel's reads) from the heap rather than a
 * fresh mapping each (mmap threshold 32 MiB, glibc's own upper bound for it), and freed memory kept
 * for the next rather than handed back to the system at once (trim threshold 256 MiB). Otherwise
 * every message a worker receives costs its page faults; the all-reduce benchmark measured 16 and
 * 64 MiB 1.25-2.3x faster with them. Only read at process start, so they go in the environment.
 * Settings already in the environment win.
 */
const WORKER_MALLOC_ENV: Readonly<Record<string, string>> = {
  MALLOC_MMAP_THRESHOLD_: String(32 * 2 ** 20),
  MALLOC_TRIM_THRESHOLD_: String(256 * 2 ** 20),
};

/**
 * V8's background threads (concurrent compilation and garbage collection) for each of `count`
 * workers sharing this machine: its cores split between them, at most Node's default of 4. Every
 * Node process starts 4 whatever the machine; 4 workers on 2 cores then run 16 of them beside
 * their device threads, and the 1 MiB all-reduce on 4 workers measured 13.6-16.3 ms with one each
 * against 17.5-23.0 ms with 4 (2 workers: the same either way).
 */
function v8PoolSize(count: number): number {
  return Math.max(1, Math.min(4, Math.floor(availableParallelism() / count)));
}

/**
 * Starts `count` worker processes on this machine that dial `url`, as an operator would start
 * them on other machines: `kiln worker --connect <url>`, the token in KILN_TOKEN, and (as several
 * on one machine want) V8's background threads sized to share its cores. They are ended when
 * this process exits, however it exits.
 */
export function startLocalWorkers(
  url: string,
  token: string,
  count: number,
  extra: readonly string[] = [],
): ChildProcess[] {
  return Array.from({ length: count }, () =>
    track(
      spawn(
        process.execPath,
        [
          `--v8-pool-size=${v8PoolSize(count)}`,
          ...NODE_FLAGS,
          KILN,
          'worker',
          '--connect',
          url,
          '--no-reconnect',
          ...extra,
        ],
        {
          stdio: ['ignore', 'ignore', 'inherit'],
          env: { ...WORKER_MALLOC_ENV, ...process.env, KILN_TOKEN: token },
        },
      ),
    ),
  );
}

/**
 * Starts `kiln coordinator` on 127.0.0.1 (a port the system picks) for `workers` workers, as an
 * operator would: resolves with its address once it listens, and `ready` once its workers have
 * all joined. Its jobs are kept in `store` (default: in memory). It is ended when this process
 * exits.
 */
export async function startLocalCoordinator(
  token: string,
  workers: number,
  store = ':memory:',
): Promise<{ readonly url: string; readonly ready: Promise<void>; readonly process: ChildProcess }> {
  const child = track(
    spawn(
      process.execPath,
      [...NODE_FLAGS, KILN, 'coordinator', '--workers', String(workers), '--store', store],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
        env: { ...process.env, KILN_TOKEN: token },
      },
    ),
  );
  let out = '';
  const line = (pattern: RegExp) =>
    new Promise<RegExpExecArray>((resolve, reject) => {
      const look = () => {
        const m = pattern.exec(out);
        if (m) resolve(m);
      };
      child.stdout!.on('data', look);
      child.once('exit', (code) => reject(new Error(`kiln coordinator exited (${code}) before: ${pattern}`)));
      look();
    });
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const ready = line(/kiln coordinator ready: /).then(() => undefined);
  ready.catch(() => undefined);
  const [, url] = await line(/kiln coordinator listening on (\S+);/);
  return { url: url!, ready, process: child };
}

// One exit hook for every process this one started, however many times it starts some.
const started = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of started) c.kill('SIGKILL');
});

function track(child: ChildProcess): ChildProcess {
  started.add(child);
  child.once('exit', () => started.delete(child));
  return child;
}
