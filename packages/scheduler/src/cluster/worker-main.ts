import { MessagePort, parentPort, workerData } from 'node:worker_threads';
import { KilnError } from '@kiln/ir';
import { resolveLimits } from '../limits/limits.js';
import { dial } from '../net/dial.js';
import { FramePool } from '../net/frame-pool.js';
import { FrameLink } from '../net/link.js';
import { throttled } from '../net/log.js';
import type { TlsFiles } from '../net/server.js';
import { decodeToWorker, encodeFrameParts } from './codec.js';
import { type PeerConnection, PeerLinks } from './peer-links.js';
import { ProgressBoard } from './progress-board.js';
import {
  type DeviceSpec,
  type FromWorker,
  type PeerMessage,
  parsePeerMessage,
  parseToWorker,
  RUN_LINK_PATH,
  type ToWorker,
} from './protocol.js';
import { isThreadControl } from './thread-control.js';
import { TickBatch, unbatch } from './tick-batch.js';
import { sharedBytes } from './wire-tensor.js';
import { type PeerSender, WorkerRuntime } from './worker-runtime.js';

/**
 * The entry point of a worker thread: protocol messages in, handled strictly one after another,
 * replies out in the same order. In a pool of threads they come and go on the coordinator's
 * MessagePort, tensor bytes in SharedArrayBuffers, so posting them copies nothing. In a worker
 * process the hello comes from the process's main thread, and everything after it on the run
 * link this thread opens to the coordinator itself.
 *
 * Values for other workers (the data plane) go out on a port to each peer thread where the pool
 * gave one, and in a worker process over sockets this thread opens itself (its start data says
 * where to listen), so a value crosses from device to socket in one thread, with no hop through
 * the process's main thread. Values from peers are taken as they come, outside the queue: a
 * partition waiting for one holds the queue.
 */
const port = parentPort;
if (!port) throw new KilnError('runtime', 'worker-main must run in a worker thread');

// The thread's start data is its command line: the device it serves, its limits, and (in a
// worker process) where to take its peers' values.
const start = workerData as {
  device: DeviceSpec;
  limits?: object;
  peer?: { host: string; token?: string; tls?: TlsFiles; ca?: string };
  /** In a worker process: the coordinator this thread opens its run link to, once greeted. */
  coordinator?: { url: string; token?: string; ca?: string };
  /** A worker process's progress board (shared memory its main thread's watchdog reads). */
  progress?: SharedArrayBuffer;
};

let name = '';
const log = (line: string) => process.stderr.write(`kiln worker: ${line}\n`);
const peerPorts = new Map<string, MessagePort>();
/** Buffers for the values peers push here, reused once each is in the device. */
const frames = new FramePool();
const links = start.peer
  ? await PeerLinks.open({
      host: start.peer.host,
      ...(start.peer.token !== undefined ? { token: start.peer.token } : {}),
      ...(start.peer.tls !== undefined ? { tls: start.peer.tls } : {}),
      ...(start.peer.ca !== undefined ? { ca: start.peer.ca } : {}),
      log,
      frames,
      name: () => name,
      deliver: (message, from) => fromPeer(message, from),
    })
  : null;
const peers: PeerSender = {
  async send(worker: string, message: PeerMessage) {
    const direct = peerPorts.get(worker);
    // To a thread: the tensor's bytes go in shared memory, so posting them copies nothing more.
    if (direct)
      direct.postMessage(
        message.t === 'tensor'
          ? { ...message, tensor: { ...message.tensor, bytes: sharedBytes(message.tensor.bytes) } }
          : message,
      );
    else if (links) await links.send(worker, message);
    else throw new KilnError('runtime', `no data-plane link to worker '${worker}'`);
  },
  received: (bytes) => frames.give(bytes),
};
const runtime = new WorkerRuntime(
  start.device,
  resolveLimits(start.limits),
  peers,
  start.progress ? new ProgressBoard(start.progress) : undefined,
);
let queue: Promise<void> = Promise.resolve();
/** Replies leave in the order their messages came, each once it is ready. */
let replies: Promise<void> = Promise.resolve();

const dropLog = throttled(log);

/**
 * A value from a peer, on a socket (a connection that can be cut off) or a port from a thread of
 * this process. One that would overflow the values held here closes its socket and drops what
 * that connection sent and nobody read: a flooding peer loses its room, the others keep theirs.
 */
function fromPeer(raw: unknown, from: PeerConnection | MessagePort): void {
  try {
    const delivery = runtime.fromPeer(parsePeerMessage(raw), from);
    if (delivery.dropped === null) return;
    if (delivery.overflow && !(from instanceof MessagePort)) {
      const forgotten = runtime.forgetPeer(from);
      log(
        `closed ${from.peer}: ${delivery.dropped}; dropped the ${forgotten} values it sent that nobody read`,
      );
      from.close(delivery.dropped);
    } else dropLog(`dropped a pushed value: ${delivery.dropped}`);
  } catch (e) {
    dropLog(`refused a message from a peer: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** Replies to the parent (the pool, or the worker process's main thread), one post per tick. */
const toParent = new TickBatch(port);
/**
 * In a worker process, once greeted: this thread's own link to the coordinator, which brings
 * every message after the hello and takes every reply (see RemoteWorker).
 */
let runLink: FrameLink<ToWorker, FromWorker> | null = null;
/** Set once a close is being handled: the run link then closes as asked, not as lost. */
let closing = false;

const reply = (r: FromWorker) => {
  if (runLink) runLink.send(r).catch(() => undefined);
  else toParent.post(r);
};

port.on('message', (posted: unknown) => {
  for (const raw of unbatch(posted)) receive(raw, 'parent');
});

/**
 * Opens the run link a greeting asked for and says whose it is; resolves with what to answer the
 * greeting with: the ready, or why there is no run link (told on the control link, by the parent).
 */
async function openRunLink(ready: FromWorker & { t: 'ready' }, key: string | undefined): Promise<FromWorker> {
  const coordinator = start.coordinator!;
  const failed = (code: string, message: string): FromWorker => ({
    t: 'failed',
    run: null,
    partition: null,
    request: null,
    error: { code, message },
  });
  if (key === undefined) return failed('protocol', 'protocol: the greeting gave no key for a run link');
  try {
    const link = await dial(
      new URL(RUN_LINK_PATH, coordinator.url).href,
      {
        ...(coordinator.token !== undefined ? { token: coordinator.token } : {}),
        ...(coordinator.ca !== undefined ? { ca: coordinator.ca } : {}),
      },
      (ws) =>
        new FrameLink<ToWorker, FromWorker>(ws, encodeFrameParts, {
          peer: `coordinator at ${coordinator.url} (run link)`,
          decode: (frame) => decodeToWorker(frame),
          log,
          // The main thread's control link watches the coordinator's liveness.
          heartbeat: false,
        }),
    );
    link.onMessage((m) => receive(m, 'run link'));
    link.onClose((why) => {
      if (closing) return;
      // Without its run link this thread has nothing to serve: it ends, and the process comes
      // back with a fresh one (its main thread sees the thread exit).
      log(`lost the run link: ${why}`);
      process.exit(1);
    });
    void link.send({ t: 'attach', worker: ready.worker, key }).catch(() => undefined);
    runLink = link;
    return ready;
  } catch (e) {
    // Worth another try: the process reconnects.
    return failed('worker', `cannot open a run link: ${e instanceof Error ? e.message : String(e)}`);
  }
}

const receive = (raw: unknown, from: 'parent' | 'run link'): void => {
  if (isThreadControl(raw)) {
    if (raw.t === 'peer-port') {
      peerPorts.get(raw.worker)?.close();
      peerPorts.set(raw.worker, raw.port);
      const source = raw.port;
      raw.port.on('message', (m: unknown) => fromPeer(m, source));
    }
    return;
  }
  // A release lets go of partitions waiting for values at once; it is handled in turn after.
  if (typeof raw === 'object' && raw !== null && (raw as { t?: unknown }).t === 'release') {
    try {
      const message = parseToWorker(raw);
      if (message.t === 'release') runtime.ending(message.runs);
    } catch {
      // Malformed: answered in turn below.
    }
  }
  queue = queue.then(async () => {
    let answer: Promise<FromWorker | null>;
    let key: string | undefined;
    let closes = false;
    try {
      const message = parseToWorker(raw);
      closes = message.t === 'close';
      if (closes) closing = true;
      if (message.t === 'hello') {
        name = message.worker;
        key = message.attach;
      }
      if (message.t === 'peers') links?.setPeers(message.peers);
      // The device goes only once what it is still sending has left.
      if (closes) await replies;
      answer = (await runtime.accept(message)).reply;
    } catch (e) {
      // A malformed message: answer it so the coordinator can tell whose fault it was.
      answer = Promise.resolve({
        t: 'failed',
        run: null,
        partition: null,
        request: null,
        error: {
          code: e instanceof KilnError ? e.code : 'protocol',
          message: e instanceof Error ? e.message : String(e),
        },
      });
    }
    // The next message is taken now; this one's reply goes out once it is ready (a partition's
    // pushes written), after the replies before it.
    replies = replies.then(async () => {
      let r = await answer;
      // Where peers reach this worker goes out with its ready.
      if (r?.t === 'ready' && links) r = { ...r, peer: links.url };
      if (r?.t === 'ready' && start.coordinator) r = await openRunLink(r, key);
      if (r) reply(r);
      // The main thread learns it is ready too (it tells the operator).
      if (r?.t === 'ready' && runLink) toParent.post(r);
    });
    if (closes) {
      await replies;
      for (const p of peerPorts.values()) p.close();
      await links?.close();
      // Asked by the coordinator (on the run link), or by the process shutting down.
      runLink?.close(
        from === 'run link' ? 'released by the coordinator' : 'the worker is shutting down',
        from === 'run link' ? 1000 : 1001,
      );
      toParent.flush();
      port.close();
    }
  });
};
