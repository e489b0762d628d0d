import type { HostTensor } from '@kiln/ir';

/**
 * What Session (one device) and ClusterSession (workers) share for variables and closing, so code
 * that reads, saves, sets or compares weights, and ends a session, runs on either.
 */
export interface VariableSession {
  /** One variable's current value. */
  readVariable(name: string): Promise<HostTensor>;
  /** Every variable's current value, by name. */
  variables(): Promise<Map<string, HostTensor>>;
  /** Sets the named variables; a value that does not fit its variable changes nothing. */
  setVariables(values: ReadonlyMap<string, HostTensor>): Promise<void>;
  /** Frees what the session holds on its devices; later runs are refused. */
  close(): Promise<void>;
}
