import { type ChildProcess, spawn } from 'node:child_process';

/** The kiln command of this checkout (built or from its sources: its bin knows which). */
const KILN = new URL('../../../packages/kiln/bin/kiln.js', import.meta.url).pathname;

/**
 * Starts `count` worker processes on this machine that dial `url`, exactly as an operator would
 * start them on other machines: `kiln worker --connect <url>`, the token in KILN_TOKEN. They are
 * ended when this process exits, however it exits.
 */
export function startLocalWorkers(url: string, token: string, count: number): ChildProcess[] {
  const children = Array.from({ length: count }, () =>
    spawn(process.execPath, [KILN, 'worker', '--connect', url, '--no-reconnect'], {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { ...process.env, KILN_TOKEN: token },
    }),
  );
  process.once('exit', () => {
    for (const c of children) c.kill('SIGKILL');
  });
  return children;
}
