import { randomBytes } from 'node:crypto';
import { loadMnist } from '@kiln/example-mnist/data';
import { placementSummary, trainDataParallel } from '@kiln/example-threads/data-parallel';
import { connect } from 'kiln-tensor';
import { startLocalCoordinator, startLocalWorkers } from './workers.js';

/**
 * MNIST data-parallel on a cluster of processes, deployed as a cluster is: a coordinator
 * (`kiln coordinator`), worker processes that dial it (`kiln worker --connect`), and this program,
 * which connects to the coordinator as a client and runs the training code of examples/threads on
 * it unchanged. By default it starts the coordinator and the workers itself, on 127.0.0.1; with
 * `--connect` it joins a coordinator already running (for other machines, start it with
 * `kiln coordinator --host 0.0.0.0 --token SECRET` and the workers with `kiln worker --connect`).
 *
 *   npm start -w examples/cluster [-- --workers 2] [--steps 30] [--connect ws://host:7070 --token SECRET]
 */
const flag = (name: string) => {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? process.argv[at + 1] : undefined;
};
const workers = Number(flag('workers') ?? 2);
const steps = Number(flag('steps') ?? 30);
const token = flag('token') ?? process.env.KILN_TOKEN ?? randomBytes(16).toString('hex');
let url = flag('connect');

const { train, test } = loadMnist();
let started: Awaited<ReturnType<typeof startLocalCoordinator>> | undefined;
if (url === undefined) {
  const coordinator = await startLocalCoordinator(token, workers);
  started = coordinator;
  url = coordinator.url;
  console.log(`coordinator listening on ${url}; starting ${workers} kiln worker processes`);
  startLocalWorkers(url, token, workers);
  await coordinator.ready;
}
const cluster = await connect(url, { token });
try {
  console.log(`workers ready: ${cluster.names.join(', ')}`);
  console.log(
    `== Data parallel: MLP 784-256-256-10, batch 256, Adam, on ${cluster.names.length} worker processes ==`,
  );
  const before = await cluster.traffic();
  const result = await trainDataParallel(cluster, train, test, {
    steps,
    batchSize: 256,
    log: (line) => process.stderr.write(`${line}\n`),
  });
  const after = await cluster.traffic();
  // Steps run: the untimed first one, `steps` timed ones, then the held-out evaluation's.
  console.log(
    `${result.samplesPerSecond.toFixed(0)} samples/s, ${(1000 * result.secondsPerStep).toFixed(1)} ms per step, final loss ${result.finalLoss.toFixed(4)}, held-out accuracy ${(100 * result.accuracy).toFixed(2)}%`,
  );
  console.log('placement:');
  console.log(placementSummary(result.plan));
  console.log('bytes between the coordinator and each worker (training and evaluation):');
  for (const link of after) {
    const start = before.find((b) => b.worker === link.worker);
    const sent = link.sent - (start?.sent ?? 0);
    const received = link.received - (start?.received ?? 0);
    console.log(
      `  ${link.worker} (${link.peer}): ${(sent / 2 ** 20).toFixed(1)} MiB sent, ${(received / 2 ** 20).toFixed(1)} MiB received`,
    );
  }
} finally {
  await cluster.close();
}
// A coordinator this program started is stopped as an operator stops one (it releases its
// workers, which then exit); anything still running when this process exits is killed.
if (started) {
  started.process.kill('SIGTERM');
  await Promise.race([
    new Promise((resolve) => started.process.once('exit', resolve)),
    new Promise((resolve) => setTimeout(resolve, 5000)),
  ]);
}
process.exit(0);
