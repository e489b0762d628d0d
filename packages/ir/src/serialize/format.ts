import type { DType } from '../dtype.js';
import { serializationError } from './error.js';

/**
 * The msgpack payload of format version 1. Positional arrays keep it small and leave no room for
 * unexpected keys; ids are implicit (a node's or value's position):
 *
 *   payload     = [nodes, values, initializers, outputs]
 *   node        = [op: string, inputs: valueId[], attrs: map, outputs: valueId[], name: string | nil,
 *                  device?: string]                     (the sixth only for nodes with a device scope)
 *   value       = [dtype: code, shape: (uint | nil)[]]   (producer and output index come from the
 *                                                          node that lists it among its outputs)
 *   initializer = [variable: string, value: valueId]
 *   output      = [name: string, value: valueId]        (pairs, so the order of names survives)
 *
 * An attribute value is nil, a boolean, a string, a number, an array of attribute values, a
 * constant tensor written as the map {dtype: code, shape: uint[], data: bytes}, with the elements
 * little-endian whatever the writer's platform, or a region (the branches of `cond`, the condition
 * and body of `while`) written as the map
 *
 *   region      = {nodes: node[], values: value[], inputs: valueId[], results: valueId[]}
 *
 * whose nodes and values are laid out as the payload's, with ids local to the region. A map is a
 * tensor or a region by its exact set of keys. Regions nest at most MAX_REGION_DEPTH (16) deep.
 * msgpackr writes the number -0 as the integer 0, so a -0 in an attribute is written as a
 * one-element Float64Array holding it.
 */
export const FORMAT_DTYPES: readonly DType[] = ['float32', 'int32', 'bool'];

export function dtypeCode(dtype: DType): number {
  const code = FORMAT_DTYPES.indexOf(dtype);
  if (code < 0) throw serializationError(`dtype ${dtype} cannot be written in format version 1`);
  return code;
}

/** The keys of a tensor map, in the order they are written. */
export const TENSOR_KEYS = ['dtype', 'shape', 'data'] as const;

/** The keys of a region map, in the order they are written. */
export const REGION_KEYS = ['nodes', 'values', 'inputs', 'results'] as const;
