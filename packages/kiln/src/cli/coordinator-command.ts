import { KilnError } from '@kiln/ir';
import { stderrLog } from '@kiln/scheduler';
import { JobsCoordinator } from '@kiln/scheduler/jobs';
import { Command, Option } from 'commander';
import { integer } from './options.js';

/** Workers may take their time to arrive at a standalone coordinator: it waits a day for each. */
const START_TIMEOUT_MILLIS = 24 * 3_600_000;

/**
 * `kiln coordinator`: a cluster's coordinator as a process of its own. Workers dial it
 * (`kiln worker --connect`), programs connect to it (`connect(url, { token })` gives them a
 * Cluster for a ClusterSession), jobs clients submit to it (`kiln submit`, `connectJobs`), and it
 * outlives them all: a worker that dies is replaced by the next
 * to connect, a client that leaves has its unfinished runs cancelled. Every option also comes
 * from an environment variable.
 */
export function coordinatorCommand(): Command {
  return new Command('coordinator')
    .description('run a kiln cluster coordinator that workers dial and programs connect to')
    .addOption(
      new Option('--workers <n>', 'how many workers the cluster runs on (worker:0..n-1)')
        .env('KILN_WORKERS')
        .argParser(integer('--workers'))
        .default(2),
    )
    .addOption(
      new Option('--host <address>', 'the address to listen on (any but loopback needs a token)')
        .env('KILN_HOST')
        .default('127.0.0.1'),
    )
    .addOption(
      new Option('--port <n>', 'the port to listen on (0: the system picks one, printed when ready)')
        .env('KILN_PORT')
        .argParser(integer('--port'))
        .default(0),
    )
    .addOption(
      new Option('--token <token>', 'the shared secret workers and clients present').env('KILN_TOKEN'),
    )
    .addOption(
      new Option('--tls-cert <file>', 'serve wss:// with this certificate (PEM)').env('KILN_TLS_CERT'),
    )
    .addOption(new Option('--tls-key <file>', "the certificate's private key (PEM)").env('KILN_TLS_KEY'))
    .addOption(new Option('--ca <file>', 'a CA bundle to verify peers with').env('KILN_CA'))
    .addOption(
      new Option(
        '--store <file>',
        'the job store (SQLite): jobs, their events and metrics outlive the process there',
      )
        .env('KILN_STORE')
        .default('kiln-jobs.sqlite'),
    )
    .addOption(
      new Option('--heartbeat-ms <n>', 'ping interval; a worker or client is dead after 3 missed')
        .env('KILN_HEARTBEAT_MS')
        .argParser(integer('--heartbeat-ms')),
    )
    .action(async (opts: CoordinatorFlags) => {
      if ((opts.tlsCert === undefined) !== (opts.tlsKey === undefined))
        throw new KilnError('invalid-argument', '--tls-cert and --tls-key go together');
      if (opts.workers < 1) throw new KilnError('invalid-argument', '--workers must be at least 1');
      const coordinator = await JobsCoordinator.listen(
        {
          workers: opts.workers,
          store: opts.store,
          host: opts.host,
          port: opts.port,
          ...(opts.token !== undefined ? { token: opts.token } : {}),
          ...(opts.tlsCert !== undefined && opts.tlsKey !== undefined
            ? {
                tls: {
                  cert: opts.tlsCert,
                  key: opts.tlsKey,
                  ...(opts.ca !== undefined ? { ca: opts.ca } : {}),
                },
              }
            : {}),
          ...(opts.heartbeatMs !== undefined ? { heartbeatMillis: opts.heartbeatMs } : {}),
          startTimeoutMillis: START_TIMEOUT_MILLIS,
          log: stderrLog,
        },
        (url) => console.log(`kiln coordinator listening on ${url}; waiting for ${opts.workers} workers`),
      );
      const shutdown = (signal: string) => {
        stderrLog(`${signal}: shutting down`);
        void coordinator.close().then(() => process.exit(0));
      };
      process.once('SIGTERM', () => shutdown('SIGTERM'));
      process.once('SIGINT', () => shutdown('SIGINT'));
      const { cluster } = coordinator;
      console.log(
        `kiln coordinator ready: ${cluster.names.join(', ')} at ${cluster.url}; jobs kept in ${opts.store}; dashboard at ${coordinator.dashboardUrl}`,
      );
    });
}

interface CoordinatorFlags {
  workers: number;
  host: string;
  port: number;
  token?: string;
  tlsCert?: string;
  tlsKey?: string;
  ca?: string;
  heartbeatMs?: number;
  store: string;
}
