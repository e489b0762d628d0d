import { execFileSync } from 'node:child_process';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';

/**
 * Network faults for the hosts of `netns.ts`, injected from outside the code under test, as a
 * network would inflict them: nftables rules in a host's namespace drop its packets (all of them,
 * a random share, or those to and from one address), and a token bucket on its cable slows what
 * reaches it, and a relay delays what crosses it. The namespace takes its rules with it when the
 * test tears it down. Each function returns what undoes it.
 */
const TABLE = 'kilnfault';

function nft(namespace: string, script: string): () => void {
  execFileSync('ip', ['netns', 'exec', namespace, 'nft', '-f', '-'], { input: script });
  return () => {
    try {
      execFileSync('ip', ['netns', 'exec', namespace, 'nft', 'delete', 'table', 'inet', TABLE]);
    } catch {
      // The namespace is gone already.
    }
  };
}

/** Filters both ways through the host: `rule` is one nft rule body, applied to input and output. */
const both = (rule: string) => `
table inet ${TABLE} {
  chain in { type filter hook input priority 0; ${rule}; }
  chain out { type filter hook output priority 0; ${rule}; }
}`;

/** The host goes silent: every packet in or out is dropped (loopback inside it still works). */
export const dropAll = (namespace: string) => nft(namespace, both('iifname != "lo" oifname != "lo" drop'));

/** The host cannot reach `address`, nor `address` it: a partition between two machines. */
export const cutFrom = (namespace: string, address: string) =>
  nft(
    namespace,
    `
table inet ${TABLE} {
  chain in { type filter hook input priority 0; ip saddr ${address} drop; }
  chain out { type filter hook output priority 0; ip daddr ${address} drop; }
}`,
  );

/** A lossy link: each packet in or out of the host is dropped with probability `percent`%. */
export const lossy = (namespace: string, percent: number) =>
  nft(namespace, both(`iifname != "lo" oifname != "lo" numgen random mod 100 < ${percent} drop`));

/**
 * A slow link: what reaches the host through its cable is held to `mbit` megabits a second (this
 * kernel has no netem for a fixed delay; a token bucket adds queueing delay as a congested link
 * does).
 */
export function slow(cable: string, mbit: number): () => void {
  execFileSync('tc', [
    'qdisc',
    'add',
    'dev',
    cable,
    'root',
    'tbf',
    'rate',
    `${mbit}mbit`,
    'burst',
    '32kbit',
    'latency',
    '400ms',
  ]);
  return () => {
    try {
      execFileSync('tc', ['qdisc', 'del', 'dev', cable, 'root']);
    } catch {
      // The cable is gone already.
    }
  };
}

/**
 * A link with latency: a TCP relay on `host` (port picked) to `target` (host:port) that holds
 * every chunk `millis` ms in each direction, in order, as a long link does. Stands in for netem's
 * fixed delay, which this kernel lacks: it runs outside the code under test, which only sees a
 * slower peer. Resolves with its port, its delay (which can be changed) and what closes it.
 */
export async function delayedLink(
  host: string,
  target: { host: string; port: number },
  millis: number,
): Promise<{ readonly port: number; millis: number; close(): void }> {
  const sockets = new Set<Socket>();
  const link = { millis };
  const server = createServer((inbound) => {
    const outbound = connect(target.port, target.host);
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => {
        sockets.delete(s);
        inbound.destroy();
        outbound.destroy();
      });
    }
    const relay = (from: Socket, to: Socket) =>
      from.on('data', (chunk) => setTimeout(() => to.destroyed || to.write(chunk), link.millis));
    relay(inbound, outbound);
    relay(outbound, inbound);
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return {
    port: (server.address() as AddressInfo).port,
    /** The delay from now on (0: a plain relay). */
    get millis() {
      return link.millis;
    },
    set millis(ms: number) {
      link.millis = ms;
    },
    close() {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}
