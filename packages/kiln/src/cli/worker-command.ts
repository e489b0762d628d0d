import { KilnError } from '@kiln/ir';
import { resolveLimits, startWorkerProcess, stderrLog } from '@kiln/scheduler';
import { Command, Option } from 'commander';
import { integer, jsonObject } from './options.js';

/**
 * `kiln worker`: serve one device to a coordinator. The worker dials out (only the coordinator
 * needs a reachable port), loads its device from this command line and nowhere else, runs the
 * partitions it is sent, and reconnects on its own when the coordinator goes away. Every option
 * also comes from an environment variable, so a launcher can start N workers without a file.
 */
export function workerCommand(): Command {
  return new Command('worker')
    .description('serve a device to a kiln coordinator')
    .addOption(
      new Option('--connect <url>', "the coordinator's address (ws://host:port or wss://host:port)")
        .env('KILN_CONNECT')
        .makeOptionMandatory(),
    )
    .addOption(new Option('--token <token>', 'the shared secret the coordinator expects').env('KILN_TOKEN'))
    .addOption(
      new Option('--ca <file>', 'a CA file to verify a wss:// coordinator and wss:// peers with').env(
        'KILN_CA',
      ),
    )
    .addOption(
      new Option('--tls-cert <file>', "serve this worker's peer port over wss:// with this certificate").env(
        'KILN_TLS_CERT',
      ),
    )
    .addOption(new Option('--tls-key <file>', "the peer certificate's private key").env('KILN_TLS_KEY'))
    .addOption(
      new Option('--device <module>', 'the device plugin to serve (a package exporting a kiln plugin)')
        .env('KILN_DEVICE')
        .default('@kiln/backend-cpu'),
    )
    .addOption(
      new Option('--device-options <json>', "options for the plugin's create(), as a JSON object")
        .env('KILN_DEVICE_OPTIONS')
        .argParser(jsonObject),
    )
    .addOption(
      new Option('--max-tensor-bytes <n>', 'the largest single allocation a graph may make')
        .env('KILN_MAX_TENSOR_BYTES')
        .argParser(integer('--max-tensor-bytes')),
    )
    .addOption(
      new Option('--max-device-bytes <n>', 'device memory a coordinator may fill in all')
        .env('KILN_MAX_DEVICE_BYTES')
        .argParser(integer('--max-device-bytes')),
    )
    .addOption(
      new Option('--heartbeat-ms <n>', 'ping interval; the coordinator is lost after 3 missed')
        .env('KILN_HEARTBEAT_MS')
        .argParser(integer('--heartbeat-ms')),
    )
    .addOption(
      new Option(
        '--watchdog-ms <n>',
        'how long a partition may run without starting a node before the device thread is taken for stuck and replaced (default 120000)',
      )
        .env('KILN_WATCHDOG_MS')
        .argParser(integer('--watchdog-ms')),
    )
    .addOption(new Option('--no-reconnect', 'exit when the coordinator goes away instead of reconnecting'))
    .addHelpText(
      'after',
      // Read by glibc at process start only, so the launcher sets them; see the README's cluster
      // section for what they buy (received tensors without a page fault per buffer).
      '\nOn Linux (glibc), start workers with MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=268435456\nin their environment: large received tensors then reuse heap memory instead of a fresh mapping each.',
    )
    .action(async (opts: WorkerFlags) => {
      if ((opts.tlsCert === undefined) !== (opts.tlsKey === undefined))
        throw new KilnError('invalid-argument', '--tls-cert and --tls-key go together');
      const limits = resolveLimits({
        ...(opts.maxTensorBytes !== undefined ? { maxTensorBytes: opts.maxTensorBytes } : {}),
        ...(opts.maxDeviceBytes !== undefined ? { maxDeviceBytes: opts.maxDeviceBytes } : {}),
      });
      const worker = startWorkerProcess({
        connect: opts.connect,
        ...(opts.token !== undefined ? { token: opts.token } : {}),
        ...(opts.ca !== undefined ? { ca: opts.ca } : {}),
        ...(opts.tlsCert !== undefined && opts.tlsKey !== undefined
          ? { tls: { cert: opts.tlsCert, key: opts.tlsKey } }
          : {}),
        device: { module: opts.device, ...(opts.deviceOptions ? { options: opts.deviceOptions } : {}) },
        limits,
        ...(opts.heartbeatMs !== undefined ? { heartbeatMillis: opts.heartbeatMs } : {}),
        ...(opts.watchdogMs !== undefined ? { watchdogMillis: opts.watchdogMs } : {}),
        reconnect: opts.reconnect,
        log: stderrLog,
        onReady: (name, peer) =>
          console.log(
            `kiln worker ready: ${name} serving ${opts.device}, connected to ${opts.connect}${peer ? `, peers at ${peer}` : ''}`,
          ),
      });
      const shutdown = (signal: string) => {
        stderrLog(`${signal}: shutting down`);
        void worker.stop().then(() => process.exit(0));
      };
      process.once('SIGTERM', () => shutdown('SIGTERM'));
      process.once('SIGINT', () => shutdown('SIGINT'));
      await worker.done;
    });
}

interface WorkerFlags {
  connect: string;
  token?: string;
  ca?: string;
  tlsCert?: string;
  tlsKey?: string;
  device: string;
  deviceOptions?: Record<string, unknown>;
  maxTensorBytes?: number;
  maxDeviceBytes?: number;
  heartbeatMs?: number;
  watchdogMs?: number;
  reconnect: boolean;
}
