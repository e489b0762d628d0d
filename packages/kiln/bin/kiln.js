#!/usr/bin/env node
// The `kiln` command. Built, it runs the compiled CLI; in a source checkout (no dist/), it runs
// the TypeScript sources through tsx, resolving workspace packages to their sources as tests do.
import { existsSync } from 'node:fs';

const built = new URL('../dist/cli/main.js', import.meta.url);
if (existsSync(built)) {
  const { main } = await import(built.href);
  await main(process.argv);
} else {
  const { execArgv, argv, execPath } = process;
  if (!execArgv.includes('--conditions=@kiln/source')) {
    // Restart with the source condition and tsx's loader, keeping stdio and signals.
    const { spawn } = await import('node:child_process');
    // tsx is found from here, not from wherever the command was started.
    const tsx = import.meta.resolve('tsx');
    const child = spawn(execPath, ['--conditions=@kiln/source', '--import', tsx, ...argv.slice(1)], {
      stdio: 'inherit',
    });
    for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => child.kill(signal));
    child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
  } else {
    const { main } = await import(new URL('../src/cli/main.ts', import.meta.url).href);
    await main(process.argv);
  }
}
