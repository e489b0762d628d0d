/**
 * Where the network layer reports what it refused and why (a bad token, an oversize frame, a peer
 * that stopped answering): one line each, so an operator can see who knocked and what happened.
 */
export type NetLog = (line: string) => void;

export const stderrLog: NetLog = (line) => {
  process.stderr.write(`${new Date().toISOString()} kiln: ${line}\n`);
};

/**
 * A log that says the same kind of thing at most once per `millis`: a flood of refusals (a peer
 * pushing garbage by the thousand) becomes one line a second with a count, not a flood of lines.
 */
export function throttled(log: NetLog, millis = 1000): NetLog {
  let last = Number.NEGATIVE_INFINITY;
  let quiet = 0;
  return (line) => {
    const now = performance.now();
    if (now - last < millis) {
      quiet++;
      return;
    }
    log(quiet > 0 ? `${line} (and ${quiet} more since the last such line)` : line);
    last = now;
    quiet = 0;
  };
}
