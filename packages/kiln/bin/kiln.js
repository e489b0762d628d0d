#!/usr/bin/env node
// The `kiln` command. Started with the `@kiln/source` condition (as the tests start it), it runs the
// TypeScript sources, so a stale build never stands in for the code under test. Otherwise it runs
// the compiled CLI when there is one, and in a checkout without dist/ restarts itself on the
// sources through tsx, resolving workspace packages to their sources as the tests do.
import { existsSync } from 'node:fs';

const fromSource = process.execArgv.includes('--conditions=@kiln/source');
const built = new URL('../dist/cli/main.js', import.meta.url);
if (fromSource) {
  const { main } = await import(new URL('../src/cli/main.ts', import.meta.url).href);
  await main(process.argv);
} else if (existsSync(built)) {
  const { main } = await import(built.href);
  await main(process.argv);
} else {
  const { execArgv, argv, execPath } = process;
  // Restart with the source condition and tsx's loader, keeping stdio and signals.
  const { spawn } = await import('node:child_process');
  // tsx is found from here, not from wherever the command was started.
  const tsx = import.meta.resolve('tsx');
  const child = spawn(
    execPath,
    [...execArgv, '--conditions=@kiln/source', '--import', tsx, ...argv.slice(1)],
    {
      stdio: 'inherit',
    },
  );
  for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}
