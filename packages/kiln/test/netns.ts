import { execFileSync } from 'node:child_process';

/**
 * Other machines for tests: network namespaces, each joined by a veth pair to one bridge on the
 * host, so traffic between the coordinator and a worker crosses a real network interface. Needs
 * root and iproute2 (CI runs as root); `hosts` says why, in one line, where it cannot.
 */
export interface Hosts {
  /** The bridge's address on the host side: what the coordinator listens on. */
  readonly coordinator: string;
  /**
   * The namespaces' names and addresses, one per worker host, and the host's end of each one's
   * veth pair (`cable`): setting it down cuts that host off, as a pulled cable does.
   */
  readonly workers: readonly {
    readonly namespace: string;
    readonly address: string;
    readonly cable: string;
  }[];
  teardown(): void;
}

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });

export function hosts(count: number): Hosts | string {
  if (process.getuid?.() !== 0) return 'network namespaces need root: skipped (CI runs as root)';
  // Names unique to this process, short enough for interface names (15 characters).
  const tag = `k${process.pid % 100000}`;
  const bridge = `${tag}br`;
  const subnet = `10.${100 + (process.pid % 100)}.${(process.pid >> 8) % 250}`;
  const made: (() => void)[] = [];
  const teardown = () => {
    for (const undo of made.splice(0).reverse()) {
      try {
        undo();
      } catch {
        // Already gone (a namespace takes its veth end with it).
      }
    }
  };
  try {
    ip('link', 'add', bridge, 'type', 'bridge');
    made.push(() => ip('link', 'del', bridge));
    ip('addr', 'add', `${subnet}.1/24`, 'dev', bridge);
    ip('link', 'set', bridge, 'up');
    const workers = Array.from({ length: count }, (_, i) => {
      const namespace = `${tag}w${i}`;
      const outside = `${tag}h${i}`;
      const inside = `${tag}n${i}`;
      const address = `${subnet}.${10 + i}`;
      ip('netns', 'add', namespace);
      made.push(() => ip('netns', 'del', namespace));
      ip('link', 'add', outside, 'type', 'veth', 'peer', 'name', inside);
      made.push(() => ip('link', 'del', outside));
      ip('link', 'set', outside, 'master', bridge);
      ip('link', 'set', outside, 'up');
      ip('link', 'set', inside, 'netns', namespace);
      ip('-n', namespace, 'addr', 'add', `${address}/24`, 'dev', inside);
      ip('-n', namespace, 'link', 'set', inside, 'up');
      ip('-n', namespace, 'link', 'set', 'lo', 'up');
      return { namespace, address, cable: outside };
    });
    return { coordinator: `${subnet}.1`, workers, teardown };
  } catch (e) {
    teardown();
    return `network namespaces could not be made (${e instanceof Error ? e.message.split('\n')[0] : String(e)}): skipped`;
  }
}
