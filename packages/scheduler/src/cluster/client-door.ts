import { KilnError } from '@kiln/ir';
import type { FrameLink } from '../net/link.js';
import type { NetLog } from '../net/log.js';
import {
  CLIENT_PROTOCOL_VERSION,
  type ClusterState,
  type FromCoordinator,
  type ToCoordinator,
} from './client-protocol.js';
import type { RemoteCluster } from './remote-cluster.js';
import type { TraceEntry } from './worker-pool.js';

/** How many requests one client may have under way; more are refused, not queued without bound. */
export const MAX_CLIENT_REQUESTS = 64;

/**
 * Serves one client connected to a standalone coordinator: each message becomes a call on the
 * cluster, each answer a message back. The client's executions queue with everyone else's; its
 * unfinished ones are cancelled if it goes away. What it sends was validated on arrival; what the
 * cluster refuses comes back as an error with the KilnError's code and message, and the
 * connection stays up.
 */
export class ClientDoor {
  private readonly running = new Map<number, AbortController>();
  private greeted = false;

  constructor(
    private readonly link: FrameLink<ToCoordinator, FromCoordinator>,
    private readonly cluster: RemoteCluster,
    private readonly client: number,
    private readonly log: NetLog,
  ) {
    link.onMessage((m) => this.receive(m));
    link.onClose((reason) => {
      for (const c of this.running.values()) c.abort();
      this.running.clear();
      this.log(`client ${client} (${link.peer}) left: ${reason}`);
    });
  }

  private receive(m: ToCoordinator): void {
    if (!this.greeted) {
      if (m.t !== 'hello' || m.version !== CLIENT_PROTOCOL_VERSION) {
        this.link.close(
          m.t === 'hello'
            ? `client protocol version ${m.version} is not ${CLIENT_PROTOCOL_VERSION}`
            : `expected hello, got '${m.t}'`,
          1002,
        );
        return;
      }
      this.greeted = true;
      void this.state().then((state) =>
        this.send({
          t: 'welcome',
          version: CLIENT_PROTOCOL_VERSION,
          client: this.client,
          names: [...this.cluster.names],
          state,
        }),
      );
      return;
    }
    if (m.t === 'hello') return;
    if (m.t === 'cancel') {
      this.running.get(m.id)?.abort();
      return;
    }
    if (this.running.size >= MAX_CLIENT_REQUESTS) {
      this.send({
        t: 'error',
        id: m.id,
        code: 'limit',
        message: `more than ${MAX_CLIENT_REQUESTS} requests under way from one client`,
      });
      this.log(
        `client ${this.client} (${this.link.peer}): refused a request over ${MAX_CLIENT_REQUESTS} under way`,
      );
      return;
    }
    const controller = new AbortController();
    this.running.set(m.id, controller);
    this.answer(m, controller.signal)
      .then(
        (reply) => this.send(reply),
        (e: unknown) => {
          const error =
            e instanceof KilnError ? e : new KilnError('runtime', e instanceof Error ? e.message : String(e));
          this.send({ t: 'error', id: m.id, code: error.code, message: error.message });
        },
      )
      .finally(() => this.running.delete(m.id));
  }

  private async answer(
    m: Exclude<ToCoordinator, { t: 'hello' | 'cancel' }>,
    signal: AbortSignal,
  ): Promise<FromCoordinator> {
    switch (m.t) {
      case 'settle':
        await this.cluster.settled();
        return { t: 'state', id: m.id, state: await this.state() };
      case 'request':
        return { t: 'answer', id: m.id, message: await this.cluster.request(m.worker, m.body, m.what) };
      case 'placed':
        this.cluster.placed(m.record);
        return { t: 'state', id: m.id, state: await this.state() };
      case 'story':
        return { t: 'story', id: m.id, entries: await this.cluster.story(...m.subjects) };
      case 'drop':
        await this.cluster.dropVariables(m.variables);
        return { t: 'state', id: m.id, state: await this.state() };
      case 'traffic':
        return { t: 'traffic', id: m.id, links: this.cluster.traffic() };
      case 'execute': {
        const trace: TraceEntry[] = [];
        const results = await this.cluster.execute(
          m.partitions,
          m.fetchCount,
          m.runs.map((feeds) => new Map(feeds)),
          {
            signal,
            ...(m.timeoutMillis !== null ? { timeoutMillis: m.timeoutMillis } : {}),
            ...(m.trace ? { trace } : {}),
          },
        );
        return { t: 'results', id: m.id, results, trace };
      }
    }
  }

  private async state(): Promise<ClusterState> {
    return {
      devices: await this.cluster.capabilities(),
      generations: this.cluster.names.map((n) => [n, this.cluster.generation(n)] as const),
      homes: this.cluster.homes(),
    };
  }

  private send(m: FromCoordinator): void {
    if (!this.link.closed) void this.link.send(m).catch(() => undefined);
  }
}
