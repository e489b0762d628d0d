import { connectJobs, type JobInfo, type Jobs, loadJobFile } from '@kiln/scheduler/jobs';
import { Command, Option } from 'commander';
import { eventLine, jobsTable, progressLine, statusText } from './job-lines.js';

/**
 * How each job command ends, as its exit code: a script can tell a finished job from a failed or
 * stopped one. (A command that could not do what it was asked, a bad job file or an unreachable
 * coordinator, exits 1 as well, with its reason on stderr.)
 */
export const EXIT = { SUCCEEDED: 0, FAILED: 1, STOPPED: 3 } as const;

interface ConnectionFlags {
  coordinator: string;
  token?: string;
  ca?: string;
}

/** The options every job command takes to reach its coordinator. */
function withConnection(command: Command): Command {
  return command
    .addOption(
      new Option('--coordinator <url>', 'the coordinator (ws://host:port or wss://)')
        .env('KILN_COORDINATOR')
        .makeOptionMandatory(),
    )
    .addOption(new Option('--token <token>', 'the shared secret the coordinator expects').env('KILN_TOKEN'))
    .addOption(new Option('--ca <file>', 'a CA bundle to verify a wss:// coordinator with').env('KILN_CA'));
}

async function withJobs<T>(flags: ConnectionFlags, use: (jobs: Jobs) => Promise<T>): Promise<T> {
  const jobs = await connectJobs(flags.coordinator, {
    ...(flags.token !== undefined ? { token: flags.token } : {}),
    ...(flags.ca !== undefined ? { ca: flags.ca } : {}),
    log: () => {},
  });
  try {
    return await use(jobs);
  } finally {
    await jobs.close();
  }
}

/**
 * Prints a job's events until it ends: log lines and state changes as lines; progress as a bar
 * redrawn in place on a terminal, or as plain lines when the output is piped. Returns the exit
 * code for how the job ended.
 */
async function follow(jobs: Jobs, id: string, from: 'start' | 'now', showProgress: boolean): Promise<number> {
  const tty = process.stdout.isTTY === true;
  let drawn = false;
  const clear = () => {
    if (drawn) process.stdout.write('\r\x1b[2K');
    drawn = false;
  };
  for await (const e of jobs.job(id).events({ from })) {
    if (e.type === 'progress') {
      if (!showProgress) continue;
      if (tty) {
        clear();
        process.stdout.write(progressLine(e, true));
        drawn = true;
      } else console.log(progressLine(e, false));
      continue;
    }
    clear();
    const line = eventLine(e);
    if (line !== undefined) console.log(line);
  }
  clear();
  return exitFor(await jobs.job(id).status());
}

const exitFor = (job: JobInfo): number =>
  job.state === 'SUCCEEDED'
    ? EXIT.SUCCEEDED
    : job.state === 'STOPPED'
      ? EXIT.STOPPED
      : job.state === 'FAILED'
        ? EXIT.FAILED
        : 0;

export function jobCommands(): Command[] {
  const submit = withConnection(
    new Command('submit')
      .description('submit a job file (JSON) to the coordinator; prints the job id')
      .argument('<job-file>', 'the job spec: see the README, "Jobs"')
      .option('--follow', "follow the job: its progress, logs and end; exit with the job's state"),
  ).action(async (file: string, flags: ConnectionFlags & { follow?: boolean }) => {
    const spec = await loadJobFile(file);
    await withJobs(flags, async (jobs) => {
      const job = await jobs.submit(spec);
      const info = await job.status();
      const where = info.workers.length ? ` on ${info.workers.join(', ')}` : '';
      console.log(`job ${job.id} ${info.state}${where}${info.reason ? `: ${info.reason}` : ''}`);
      process.exitCode = flags.follow
        ? await follow(jobs, job.id, 'start', true)
        : info.state === 'FAILED'
          ? EXIT.FAILED
          : 0;
    });
  });
  const list = withConnection(new Command('jobs').description('list every job the coordinator has'))
    .option('--json', 'print JSON')
    .action(async (flags: ConnectionFlags & { json?: boolean }) => {
      await withJobs(flags, async (jobs) => {
        const all = await jobs.list();
        console.log(flags.json ? JSON.stringify(all, null, 2) : all.length ? jobsTable(all) : 'no jobs');
      });
    });
  const status = withConnection(new Command('status').description("print a job's state, progress and result"))
    .argument('<id>', 'the job id')
    .option('--json', 'print JSON')
    .action(async (id: string, flags: ConnectionFlags & { json?: boolean }) => {
      await withJobs(flags, async (jobs) => {
        const info = await jobs.job(id).status();
        console.log(flags.json ? JSON.stringify(info, null, 2) : statusText(info));
        process.exitCode = exitFor(info);
      });
    });
  const logs = withConnection(new Command('logs').description("print a job's log lines and state changes"))
    .argument('<id>', 'the job id')
    .option('--follow', 'keep printing until the job ends, with its progress')
    .action(async (id: string, flags: ConnectionFlags & { follow?: boolean }) => {
      await withJobs(flags, async (jobs) => {
        const info = await jobs.job(id).status();
        if (flags.follow) {
          process.exitCode = await follow(jobs, id, 'start', true);
          return;
        }
        // Without --follow: the history so far, then exit.
        const stop = new AbortController();
        let seen = 0;
        for await (const e of jobs.job(id).events({ signal: stop.signal })) {
          const line = eventLine(e);
          if (line !== undefined) console.log(line);
          if (++seen >= info.events) stop.abort();
        }
      });
    });
  const cancel = withConnection(
    new Command('cancel').description('stop a job: a pending one at once, a running one after its step'),
  )
    .argument('<id>', 'the job id')
    .action(async (id: string, flags: ConnectionFlags) => {
      await withJobs(flags, async (jobs) => {
        const info = await jobs.job(id).cancel();
        console.log(`job ${id} ${info.state}${info.reason ? `: ${info.reason}` : ''}`);
      });
    });
  return [submit, list, status, logs, cancel];
}
