import type { TensorValue } from '../attrs.js';
import type { DType } from '../dtype.js';
import type { GraphData, Initializer, Node, Value, ValueId } from '../graph/graph.js';
import { MAX_REGION_DEPTH, type Region } from '../graph/region.js';
import type { OpName } from '../ops/index.js';
import type { Dim } from '../shape.js';
import { quote, describeDecoded as show } from './describe.js';
import { serializationError } from './error.js';
import { FORMAT_DTYPES, REGION_KEYS, TENSOR_KEYS } from './format.js';
import { isPlainObject } from './plain-object.js';
import { elementBytes, fromLittleEndianBytes } from './tensor-bytes.js';

/**
 * The payload tree (whatever msgpack produced) -> GraphData, checking the type of every field
 * before using it: the checksum only proves the bytes are the ones written, not that whoever wrote
 * them meant well. Everything here is structural (kinds, ids in range, each value produced once);
 * the graph's meaning (ops, arities, attributes, types) is left to verifyGraph.
 */
export function payloadToGraph(payload: unknown, payloadBytes: number): GraphData {
  const [rawNodes, rawValues, rawInitializers, rawOutputs] = tuple(payload, 4, 'the payload');
  const ctx: Context = { payloadBytes, regionDepth: 0 };
  const { nodes, values } = body(rawNodes, rawValues, '', ctx);
  const valueCount = values.length;

  const initializers = list(rawInitializers, 'initializers', payloadBytes).map((raw, i): Initializer => {
    const where = `initializer ${i}`;
    const [variable, value] = tuple(raw, 2, where);
    if (typeof variable !== 'string') fail(`${where} variable`, 'a variable name (a string)', variable);
    return { variable: variable as string, value: valueId(value, valueCount, `${where} value`) };
  });

  const outputs: Record<string, ValueId> = {};
  const outputNames = new Set<string>();
  list(rawOutputs, 'outputs', payloadBytes).forEach((raw, i) => {
    const where = `output ${i}`;
    const [name, value] = tuple(raw, 2, where);
    if (typeof name !== 'string') fail(`${where} name`, 'a string', name);
    const key = name as string;
    if (key === '__proto__') throw malformed(`${where}: '__proto__' cannot name an output`);
    if (outputNames.has(key)) throw malformed(`${where}: the name ${quote(key)} is used twice`);
    outputNames.add(key);
    outputs[key] = valueId(value, valueCount, `${where} value`);
  });

  return { nodes, values, initializers, outputs };
}

/** What every level of the payload is checked against: its size, and how deep regions nest. */
interface Context {
  readonly payloadBytes: number;
  readonly regionDepth: number;
}

/**
 * The nodes and values of a graph or of a region (`prefix` says which, in messages). Each value is
 * produced by exactly one node, whose outputs list it.
 */
function body(
  rawNodes: unknown,
  rawValues: unknown,
  prefix: string,
  ctx: Context,
): { nodes: Node[]; values: Value[] } {
  const { payloadBytes } = ctx;
  // Each element takes at least one payload byte, so no honest count exceeds the byte count; the
  // check comes before anything is allocated in proportion to a count.
  const nodeList = list(rawNodes, `${prefix}nodes`, payloadBytes);
  const valueList = list(rawValues, `${prefix}values`, payloadBytes);
  const valueCount = valueList.length;

  const types = valueList.map((raw, i) => valueType(raw, `${prefix}value %${i}`));
  const producer = new Int32Array(valueCount).fill(-1);
  const outputIndex = new Int32Array(valueCount);

  const nodes = nodeList.map((raw, id): Node => {
    const where = `${prefix}node #${id}`;
    const [op, rawInputs, rawAttrs, rawNodeOutputs, name, device] = nodeTuple(raw, where);
    if (typeof op !== 'string') fail(where, 'an op name (a string)', op);
    const inputs = list(rawInputs, `${where} inputs`, payloadBytes).map((v, k) =>
      valueId(v, valueCount, `${where} input ${k}`),
    );
    const outputs = list(rawNodeOutputs, `${where} outputs`, payloadBytes).map((v, k) => {
      const value = valueId(v, valueCount, `${where} output ${k}`);
      if (producer[value]! >= 0) {
        throw malformed(
          `${where} output ${k}: value %${value} is already output ${outputIndex[value]} of node #${producer[value]}`,
        );
      }
      producer[value] = id;
      outputIndex[value] = k;
      return value;
    });
    const attrs = attributes(rawAttrs, where, ctx);
    if (name !== null && typeof name !== 'string') fail(`${where} name`, 'a string or nil', name);
    if (device !== undefined && (typeof device !== 'string' || device.length === 0))
      fail(`${where} device`, 'a non-empty string', device);
    return {
      id,
      op: op as OpName,
      inputs,
      attrs,
      outputs,
      ...(name === null ? {} : { name: name as string }),
      ...(device === undefined ? {} : { device: device as string }),
    };
  });

  const values = types.map((type, id): Value => {
    if (producer[id]! < 0) throw malformed(`${prefix}value %${id} is not an output of any node`);
    return { id, type, node: producer[id]!, index: outputIndex[id]! };
  });
  return { nodes, values };
}

/**
 * A region attribute: the map {nodes, values, inputs, results}, its nodes and values laid out as
 * the payload's. Whether it is a sound region (inputs are placeholders, and so on) is verifyRegion's
 * to say, when the attribute is parsed.
 */
function region(raw: Record<string, unknown>, where: string, ctx: Context): Region {
  if (ctx.regionDepth >= MAX_REGION_DEPTH)
    throw malformed(`${where}: regions nested more than ${MAX_REGION_DEPTH} deep`);
  const inner: Context = { payloadBytes: ctx.payloadBytes, regionDepth: ctx.regionDepth + 1 };
  const { nodes, values } = body(raw.nodes, raw.values, `${where}: `, inner);
  const ids = (x: unknown, what: string) =>
    list(x, `${where}: ${what}`, ctx.payloadBytes).map((v, i) =>
      valueId(v, values.length, `${where}: ${what}[${i}]`),
    );
  return {
    nodes,
    values,
    initializers: [],
    outputs: {},
    inputs: ids(raw.inputs, 'inputs'),
    results: ids(raw.results, 'results'),
  };
}

// ---------------------------------------------------------------- field checks

const malformed = (message: string) => serializationError(`malformed payload: ${message}`);

function fail(where: string, expected: string, got: unknown): never {
  throw malformed(`${where}: expected ${expected}, got ${show(got)}`);
}

/** A node is five elements, or six when it carries a device scope. */
function nodeTuple(x: unknown, where: string): unknown[] {
  if (!Array.isArray(x) || (x.length !== 5 && x.length !== 6)) fail(where, 'an array of 5 or 6', x);
  return x as unknown[];
}

function tuple(x: unknown, length: number, where: string): unknown[] {
  if (!Array.isArray(x) || x.length !== length) fail(where, `an array of ${length}`, x);
  return x as unknown[];
}

function list(x: unknown, where: string, cap: number): unknown[] {
  if (!Array.isArray(x)) fail(where, 'an array', x);
  const items = x as unknown[];
  if (items.length > cap) throw malformed(`${where}: ${items.length} entries in a ${cap}-byte payload`);
  return items;
}

const isUint = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;

/**
 * msgpack has a float -0, which passes isUint. As a size or an id it is read as the 0 it stands
 * for: the graph's own -0 would print and compare as 0 yet not be one (Object.is), and msgpack
 * writers (msgpackr among them) save it as the integer 0 anyway.
 */
const uint = (x: number): number => x + 0;

function valueId(x: unknown, count: number, where: string): ValueId {
  if (!isUint(x) || x >= count) fail(where, `a value id below ${count}`, x);
  return uint(x as number) as ValueId;
}

function dtype(x: unknown, where: string): DType {
  if (!isUint(x) || x >= FORMAT_DTYPES.length) fail(where, `a dtype code below ${FORMAT_DTYPES.length}`, x);
  return FORMAT_DTYPES[x as number]!;
}

function valueType(raw: unknown, where: string): Value['type'] {
  const [code, rawShape] = tuple(raw, 2, where);
  if (!Array.isArray(rawShape)) fail(`${where} shape`, 'an array', rawShape);
  const shape = (rawShape as unknown[]).map((d, i): Dim => {
    if (d !== null && !isUint(d)) fail(`${where} shape[${i}]`, 'a size or nil', d);
    return d === null ? null : uint(d as number);
  });
  return { dtype: dtype(code, `${where} dtype`), shape };
}

function attributes(raw: unknown, where: string, ctx: Context): Record<string, unknown> {
  if (!isPlainObject(raw)) fail(`${where} attributes`, 'a map', raw);
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(raw as object)) {
    // msgpackr already renames this key; refusing it here keeps the guard independent of that.
    if (key === '__proto__') throw malformed(`${where}: '__proto__' cannot name an attribute`);
    out[key] = attrValue((raw as Record<string, unknown>)[key], `${where} attribute ${quote(key)}`, 0, ctx);
  }
  return out;
}

/** Deeper than any attribute kind needs (pairs are two levels); keeps recursion bounded. */
const MAX_ATTR_DEPTH = 8;

function attrValue(x: unknown, where: string, depth: number, ctx: Context): unknown {
  if (x === null || typeof x === 'boolean' || typeof x === 'string' || typeof x === 'number') return x;
  if (Array.isArray(x)) {
    if (depth >= MAX_ATTR_DEPTH) throw malformed(`${where}: arrays nested more than ${MAX_ATTR_DEPTH} deep`);
    return x.map((v, i) => attrValue(v, `${where}[${i}]`, depth + 1, ctx));
  }
  if (x instanceof Float64Array && x.length === 1) return x[0]!; // a boxed -0, see format.ts
  if (isPlainObject(x)) return hasExactly(x, REGION_KEYS) ? region(x, where, ctx) : tensor(x, where);
  return fail(where, 'an attribute value', x);
}

const hasExactly = (raw: Record<string, unknown>, keys: readonly string[]) =>
  Object.keys(raw).length === keys.length && keys.every((k) => Object.hasOwn(raw, k));

/** A map's keys for a message: the first few (a forged map can have millions). */
function keyList(raw: Record<string, unknown>): string {
  const keys = Object.keys(raw);
  const shown = keys.slice(0, 8).map(quote).join(', ');
  return keys.length > 8 ? `${shown} and ${keys.length - 8} more` : shown;
}

/** A map that is not a region (see attrValue) must be a tensor. */
function tensor(raw: Record<string, unknown>, where: string): TensorValue {
  if (!hasExactly(raw, TENSOR_KEYS)) {
    throw malformed(
      `${where}: a tensor map has exactly the keys ${TENSOR_KEYS.join(', ')}; got ${keyList(raw)}`,
    );
  }
  const type = dtype(raw.dtype, `${where} dtype`);
  if (!Array.isArray(raw.shape)) fail(`${where} shape`, 'an array', raw.shape);
  const shape = (raw.shape as unknown[]).map((d, i) => {
    if (!isUint(d)) fail(`${where} shape[${i}]`, 'a size', d);
    return uint(d as number);
  });
  const data = raw.data;
  if (!(data instanceof Uint8Array)) return fail(`${where} data`, 'bytes', data);
  // The element count must match the bytes present; multiplying stops as soon as it passes them,
  // so forged sizes never become a large number, let alone an allocation.
  const width = elementBytes(type);
  let count = shape.includes(0) ? 0 : 1;
  for (const d of shape) {
    count *= d;
    if (count * width > data.length) break;
  }
  if (count * width !== data.length) {
    throw malformed(
      `${where}: ${data.length} data bytes do not hold a ${type} tensor of shape [${shape.join(',')}]`,
    );
  }
  return { dtype: type, shape, data: fromLittleEndianBytes(type, data) };
}
