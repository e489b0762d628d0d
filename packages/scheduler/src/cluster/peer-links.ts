import { KilnError } from '@kiln/ir';
import { dial } from '../net/dial.js';
import type { FramePool } from '../net/frame-pool.js';
import { FrameLink } from '../net/link.js';
import type { NetLog } from '../net/log.js';
import { type Listening, listen, type TlsFiles } from '../net/server.js';
import { decodePeer, encodeFrameParts } from './codec.js';
import { type PeerMessage, PROTOCOL_VERSION } from './protocol.js';

export interface PeerLinksOptions {
  /** The address to take peers' connections on: the one this worker reaches its coordinator from. */
  readonly host: string;
  readonly token?: string;
  /** Serve peers over wss:// with this certificate and key. */
  readonly tls?: TlsFiles;
  /** A CA to verify wss:// peers with. */
  readonly ca?: string;
  readonly log: NetLog;
  /** This worker's name, once the coordinator has given it one. */
  readonly name: () => string;
  /** Where the buffers of values that arrive in several messages come from (see FramePool). */
  readonly frames?: FramePool;
  /** A value a peer pushed here (already checked), and the connection it came on. */
  readonly deliver: (message: PeerMessage, from: PeerConnection) => void;
}

/** A connection values arrive on, as the worker sees it: who it is, and how to cut it off. */
export interface PeerConnection {
  readonly peer: string;
  close(reason: string): void;
}

/**
 * A worker process's data plane: a port where the other workers push values to it, and a link to
 * each peer it pushes values to, dialed when first needed, with the cluster's token, greeting the
 * peer with its name. The coordinator says where the peers are ('peers'); it never carries the
 * values. A peer connection that breaks the protocol is dropped with a log line.
 */
export class PeerLinks {
  private readonly links = new Map<string, Promise<FrameLink<PeerMessage, PeerMessage>>>();
  private addresses = new Map<string, string>();

  private constructor(
    private readonly options: PeerLinksOptions,
    private readonly listening: Listening,
  ) {}

  static async open(options: PeerLinksOptions): Promise<PeerLinks> {
    const listening = await listen(
      {
        host: options.host,
        ...(options.token !== undefined ? { token: options.token } : {}),
        ...(options.tls !== undefined ? { tls: options.tls } : {}),
        log: options.log,
      },
      (ws, request) => {
        const who = `peer at ${request.socket.remoteAddress ?? '?'}:${request.socket.remotePort ?? '?'}`;
        const link = new FrameLink<PeerMessage, PeerMessage>(ws, encodeFrameParts, {
          peer: who,
          decode: (frame) => decodePeer(frame),
          log: options.log,
          ...(options.frames ? { frames: options.frames } : {}),
        });
        let greeted = false;
        const connection: PeerConnection = {
          peer: who,
          close: (reason) => link.close(reason, 1008),
        };
        link.onMessage((message) => {
          if (!greeted) {
            if (message.t !== 'peer' || message.version !== PROTOCOL_VERSION) {
              options.log(
                `refused ${who}: it did not greet as a kiln worker of protocol ${PROTOCOL_VERSION}`,
              );
              link.close('expected a peer greeting', 1008);
              return;
            }
            greeted = true;
            return;
          }
          if (message.t === 'tensor') options.deliver(message, connection);
        });
      },
    );
    return new PeerLinks(options, listening);
  }

  /** Where peers reach this worker. */
  get url(): string {
    return this.listening.url;
  }

  /** The coordinator's table of peers: a changed address closes the old link. */
  setPeers(peers: readonly (readonly [string, string])[]): void {
    const next = new Map(peers);
    for (const [worker, link] of this.links) {
      if (next.get(worker) === this.addresses.get(worker)) continue;
      this.links.delete(worker);
      void link.then((l) => l.close('the peer moved', 1001)).catch(() => undefined);
    }
    this.addresses = next;
  }

  async send(worker: string, message: PeerMessage): Promise<void> {
    let link = this.links.get(worker);
    if (!link) {
      const url = this.addresses.get(worker);
      if (!url)
        throw new KilnError(
          'worker',
          `no address for worker '${worker}': the coordinator has not said where it is`,
        );
      link = this.connect(worker, url);
      this.links.set(worker, link);
      link.catch(() => this.links.delete(worker));
    }
    await (await link).send(message);
  }

  async close(): Promise<void> {
    for (const link of this.links.values())
      void link.then((l) => l.close('the worker is leaving', 1001)).catch(() => undefined);
    this.links.clear();
    await this.listening.close();
  }

  private async connect(worker: string, url: string): Promise<FrameLink<PeerMessage, PeerMessage>> {
    const link = await dial(
      url,
      {
        ...(this.options.token !== undefined ? { token: this.options.token } : {}),
        ...(this.options.ca !== undefined ? { ca: this.options.ca } : {}),
      },
      (ws) =>
        new FrameLink<PeerMessage, PeerMessage>(ws, encodeFrameParts, {
          peer: `${worker} at ${url}`,
          decode: (frame) => decodePeer(frame),
          log: this.options.log,
        }),
    );
    link.onClose(() => {
      if (this.links.get(worker)) this.links.delete(worker);
    });
    await link.send({ t: 'peer', version: PROTOCOL_VERSION, from: this.options.name() });
    return link;
  }
}
