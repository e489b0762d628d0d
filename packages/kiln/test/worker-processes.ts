import { type ChildProcess, spawn } from 'node:child_process';

/**
 * `kiln worker` and `kiln coordinator` processes for tests: spawned from the sources (the same command a user runs, with
 * tsx and the source condition), tracked, and all killed by `killAll` whatever happened, so a
 * failing test leaves no process behind.
 */
const BIN = new URL('../bin/kiln.js', import.meta.url).pathname;
const started = new Set<ChildProcess>();

export interface WorkerChild {
  readonly process: ChildProcess;
  /** Resolves with the name the coordinator gave it, from its ready line. */
  readonly ready: Promise<string>;
  /** Everything it wrote to stderr, for messages. */
  stderr(): string;
  /** Everything it wrote to stdout (its ready line). */
  stdout(): string;
  /** Resolves with its exit code (or signal). */
  readonly exited: Promise<number | string>;
}

/** Starts `kiln worker --connect url`; in network namespace `namespace` when one is given. */
export function startWorker(
  url: string,
  token: string,
  extra: readonly string[] = [],
  namespace?: string,
): WorkerChild {
  const child = startKiln(
    ['worker', '--connect', url, ...extra],
    token,
    /kiln worker ready: (\S+)/,
    namespace,
  );
  const ready = child.ready.then((m) => m[1]!);
  ready.catch(() => undefined);
  return { ...child, ready };
}

export interface CoordinatorChild extends Omit<WorkerChild, 'ready'> {
  /** Resolves with the address it listens on, as soon as it does. */
  readonly listening: Promise<string>;
  /** Resolves once its workers have all joined. */
  readonly ready: Promise<void>;
}

/** Starts `kiln coordinator` (on port 0: it prints the port it bound). */
export function startCoordinator(token: string, extra: readonly string[] = []): CoordinatorChild {
  // A test's jobs live with its coordinator unless it names a store file.
  const store = extra.includes('--store') ? [] : ['--store', ':memory:'];
  const child = startKiln(['coordinator', ...store, ...extra], token, /kiln coordinator ready: /);
  let out = '';
  const listening = new Promise<string>((resolve, reject) => {
    child.process.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /kiln coordinator listening on (\S+);/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.process.once('exit', (code) =>
      reject(new Error(`kiln coordinator exited (${code}): ${child.stderr()}`)),
    );
  });
  listening.catch(() => undefined);
  const ready = child.ready.then(() => undefined);
  ready.catch(() => undefined);
  return { ...child, listening, ready };
}

/** Spawns `kiln <args>` from the sources, tracked for killAll; `ready` matches its stdout. */
function startKiln(
  args: readonly string[],
  token: string,
  readyLine: RegExp,
  namespace?: string,
): Omit<WorkerChild, 'ready'> & { readonly ready: Promise<RegExpExecArray> } {
  const command = [process.execPath, '--conditions=@kiln/source', '--import', 'tsx', BIN, ...args];
  // `ip netns exec` execs the command in place: the child's pid is the worker's, for SIGKILL.
  const [file, ...rest] = namespace ? ['ip', 'netns', 'exec', namespace, ...command] : command;
  const child = spawn(file!, rest, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, KILN_TOKEN: token },
  });
  started.add(child);
  let err = '';
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  let out = '';
  const ready = new Promise<RegExpExecArray>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = readyLine.exec(out);
      if (m) resolve(m);
    });
    child.once('exit', (code) =>
      reject(new Error(`kiln ${args[0]} exited (${code}) before it was ready: ${err}`)),
    );
  });
  ready.catch(() => undefined);
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => {
      started.delete(child);
      resolve(code ?? signal ?? -1);
    }),
  );
  return { process: child, ready, exited, stderr: () => err, stdout: () => out };
}

/** How a command ended: its exit code (or signal) and its output. */
export interface Ran {
  readonly code: number | string;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `kiln <args>` to its end (from the sources); its exit code and output. */
export function runKiln(args: readonly string[], env: Readonly<Record<string, string>> = {}): Promise<Ran> {
  return ran(
    spawn(process.execPath, ['--conditions=@kiln/source', '--import', 'tsx', BIN, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    }),
  );
}

/**
 * Runs `kiln <args>` on a terminal: under `script`, which gives it a pseudo-terminal, as a person
 * at a shell would. Its output is what the terminal received, control sequences included.
 */
export function runKilnOnTerminal(
  args: readonly string[],
  env: Readonly<Record<string, string>> = {},
): Promise<Ran> {
  const quote = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;
  const command = [process.execPath, '--conditions=@kiln/source', '--import', 'tsx', BIN, ...args]
    .map(quote)
    .join(' ');
  return ran(
    spawn('script', ['-qec', command, '/dev/null'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    }),
  );
}

/** A child tracked for killAll until it ends, with all it wrote. */
function ran(child: ChildProcess): Promise<Ran> {
  started.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  // 'close', not 'exit': it comes after the last of the output.
  return new Promise((resolve) =>
    child.once('close', (code, signal) => {
      started.delete(child);
      resolve({ code: code ?? signal ?? -1, stdout, stderr });
    }),
  );
}

export async function killAll(): Promise<void> {
  const all = [...started];
  for (const c of all) c.kill('SIGKILL');
  await Promise.all(
    all.map(
      (c) =>
        new Promise((resolve) =>
          c.exitCode !== null || c.signalCode !== null ? resolve(null) : c.once('exit', resolve),
        ),
    ),
  );
}
