import { type ChildProcess, spawn } from 'node:child_process';

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
 * Starts `count` worker processes on this machine that dial `url`, exactly as an operator would
 * start them on other machines: `kiln worker --connect <url>`, the token in KILN_TOKEN. They are
 * ended when this process exits, however it exits.
 */
export function startLocalWorkers(
  url: string,
  token: string,
  count: number,
  extra: readonly string[] = [],
): ChildProcess[] {
  return Array.from({ length: count }, () =>
    track(
      spawn(process.execPath, [...NODE_FLAGS, KILN, 'worker', '--connect', url, '--no-reconnect', ...extra], {
        stdio: ['ignore', 'ignore', 'inherit'],
        env: { ...process.env, KILN_TOKEN: token },
      }),
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
