/**
 * How a data-parallel graph names its copies. A name depends only on the replica's or the
 * micro-batch's own index, never on how many there are, so the graph built for fewer devices holds
 * the same variables under the same names as the first devices of a bigger one: a commit of one
 * restores into the other.
 */

/** Replica r's name for a placeholder or output of the forward graph. */
export const replicaName = (name: string, r: number) => `${name}@r${r}`;
/** The name scope of replica r's nodes and variables ('replica1/dense1/w'). */
export const replicaScope = (r: number) => `replica${r}`;
/** Micro-batch k's name for a placeholder or output of the forward graph ('x@m3'). */
export const microBatchName = (name: string, k: number) => `${name}@m${k}`;
/** The name scope of micro-batch k's nodes, inside its device's replica ('replica1/m3/dense1/matmul'). */
export const microBatchScope = (r: number, k: number) => `${replicaScope(r)}/m${k}`;
