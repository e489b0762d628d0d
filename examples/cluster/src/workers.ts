import { type ChildProcess, spawn } from 'node:child_process';

/** The kiln command of this checkout (built or from its sources: its bin knows which). */
const KILN = new URL('../../../packages/kiln/bin/kiln.js', import.meta.url).pathname;

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
  const children = Array.from({ length: count }, () =>
    spawn(process.execPath, [KILN, 'worker', '--connect', url, '--no-reconnect', ...extra], {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { ...process.env, KILN_TOKEN: token },
    }),
  );
  for (const c of children) {
    started.add(c);
    c.once('exit', () => started.delete(c));
  }
  return children;
}

// One exit hook for every worker this process started, however many times it starts some.
const started = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of started) c.kill('SIGKILL');
});
