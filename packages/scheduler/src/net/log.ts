/**
 * Where the network layer reports what it refused and why (a bad token, an oversize frame, a peer
 * that stopped answering): one line each, so an operator can see who knocked and what happened.
 */
export type NetLog = (line: string) => void;

export const stderrLog: NetLog = (line) => {
  process.stderr.write(`${new Date().toISOString()} kiln: ${line}\n`);
};
