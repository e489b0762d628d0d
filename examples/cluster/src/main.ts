import { randomBytes } from 'node:crypto';
import { loadMnist } from '@kiln/example-mnist/data';
import { placementSummary, trainDataParallel } from '@kiln/example-threads/data-parallel';
import { RemoteCluster } from 'kiln';
import { startLocalWorkers } from './workers.js';

/**
 * MNIST data-parallel on worker processes: a coordinator (this program) listens, workers dial it
 * with `kiln worker --connect`, and the same training code as examples/threads runs on them. By
 * default it starts 2 workers itself on 127.0.0.1; with `--external` it waits for workers started
 * elsewhere (other machines: listen on `--host 0.0.0.0`, which needs a token).
 *
 *   npm start -w examples/cluster [-- --workers 2] [--steps 30] [--host 0.0.0.0 --port 7070
 *                                    --token SECRET --external]
 */
const flag = (name: string) => {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? process.argv[at + 1] : undefined;
};
const workers = Number(flag('workers') ?? 2);
const steps = Number(flag('steps') ?? 30);
const external = process.argv.includes('--external');
const token = flag('token') ?? process.env.KILN_TOKEN ?? randomBytes(16).toString('hex');
const host = flag('host') ?? '127.0.0.1';
const port = Number(flag('port') ?? 0);

const { train, test } = loadMnist();
const cluster = await RemoteCluster.listen({ workers, host, port, token }, (url) => {
  if (external) {
    console.log(`coordinator listening on ${url}; start ${workers} workers with:`);
    console.log(`  KILN_TOKEN=${token} npx kiln worker --connect ${url.replace('0.0.0.0', '<this host>')}`);
  } else {
    console.log(`coordinator listening on ${url}; starting ${workers} kiln worker processes`);
    startLocalWorkers(url, token, workers);
  }
});
try {
  console.log(`workers ready: ${cluster.names.join(', ')}`);
  console.log(`== Data parallel: MLP 784-256-256-10, batch 256, Adam, on ${workers} worker processes ==`);
  const before = cluster.traffic();
  const result = await trainDataParallel(cluster, train, test, {
    steps,
    batchSize: 256,
    log: (line) => process.stderr.write(`${line}\n`),
  });
  const after = cluster.traffic();
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
