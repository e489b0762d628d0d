// Builds the addon at install, with node-gyp against the Node headers on this machine (npm is set
// to use them: nothing is downloaded). backend-native is optional by design: when the compiler,
// the headers or OpenBLAS are missing, installing still succeeds, and the reason is written to
// build/unavailable.txt, which the package reads to say in one line why the device is unavailable.
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const reasonFile = `${root}build/unavailable.txt`;
rmSync(reasonFile, { force: true });
// npm tells its scripts where its own node-gyp is; outside npm, one on the PATH.
const gyp = process.env.npm_config_node_gyp;
const [command, args] = gyp ? [process.execPath, [gyp]] : ['node-gyp', []];
const result = spawnSync(command, [...args, 'rebuild', '--release'], { cwd: root, encoding: 'utf8' });
if (result.status === 0) {
  console.log('@kiln/backend-native: built');
} else {
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}`;
  const why =
    result.error?.message ??
    output
      .split('\n')
      .find((line) => /error|not found|cannot find/i.test(line))
      ?.trim() ??
    `node-gyp exited with ${result.status}`;
  mkdirSync(`${root}build`, { recursive: true });
  writeFileSync(reasonFile, `${why}\n`);
  console.warn(`@kiln/backend-native: not built (${why}); kiln uses backend-cpu instead`);
}
