import { clip, type DType, isDType, KilnError } from '@kiln/ir';
import type { DeviceCapabilities } from './capabilities.js';

/**
 * The messages between a coordinator and its workers. They are plain data (strings, numbers,
 * arrays, byte arrays) so the same messages travel over a MessagePort to a worker thread and, as
 * msgpack frames (codec.ts), over a socket to a remote node. A worker runs IR it is sent, never
 * code, and checks every message it receives (parseToWorker) as a remote node must.
 *
 * Version 4: a worker process's device thread opens a run link of its own to the coordinator
 * (RUN_LINK_PATH), named by the key its hello carries; every message after the hello travels on
 * it. Version 3 relayed them all through the process's main thread.
 */
export const PROTOCOL_VERSION = 4;

/**
 * Where a worker process's device thread dials the coordinator for its run link: the path on the
 * coordinator's port, behind the same token as every other connection.
 */
export const RUN_LINK_PATH = '/kiln/run-link';

/** A tensor on the wire: its elements' bytes, little-endian, row-major. */
export interface WireTensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly bytes: Uint8Array;
}

/** Which device a worker creates: a module exporting a `plugin` (package name or file URL). */
export interface DeviceSpec {
  readonly module: string;
  readonly options?: Readonly<Record<string, unknown>>;
}

/**
 * Where a loaded partition's inputs come from, in binding order: a variable from the worker's own
 * store, an argument that arrives with the run, a value an earlier partition of the same run kept
 * on this worker ('local', named by its key), which never leaves the worker, or a value a
 * partition on another worker pushed here ('peer', by its key), worker to worker, never through
 * the coordinator.
 */
export interface WireInput {
  readonly kind: 'variable' | 'arg' | 'local' | 'peer';
  readonly name: string;
}

/**
 * What becomes of each result: returned with `done`, stored into a variable of the worker, or
 * only kept for later partitions of the run. `keep` lists the keys it is kept under on this
 * worker, `push` the workers it goes to directly, with the key each receives it under (a returned
 * result may be kept and pushed too).
 */
export interface WireOutput {
  readonly kind: 'return' | 'assign' | 'keep';
  readonly name: string;
  readonly keep?: readonly string[];
  readonly push?: readonly (readonly [worker: string, key: string])[];
}

/**
 * Messages between workers (the data plane): a value one partition pushes to a partition of the
 * same run on another worker, under its rendezvous key; and, on a socket between two worker
 * processes, the greeting that says who dialed.
 */
export type PeerMessage =
  | { readonly t: 'tensor'; readonly run: number; readonly key: string; readonly tensor: WireTensor }
  | { readonly t: 'peer'; readonly version: number; readonly from: string };

/** A partition's memory layout (the ABI's MemoryLayout with its map as pairs). */
export interface WireMemory {
  readonly order: readonly number[];
  readonly arenaBytes: number;
  readonly offsets: readonly (readonly [number, number])[];
}

export type ToWorker =
  /**
   * The coordinator names the worker. It never says which device to use: a worker serves the
   * device named in its own start options (command line, or a thread's start data), so no
   * message can make it import a module.
   */
  | {
      readonly t: 'hello';
      readonly version: number;
      readonly worker: string;
      /**
       * To a worker process: the key its device thread presents on the run link it opens, over
       * which every later message goes (see RUN_LINK_PATH). Threads of a pool have none.
       */
      readonly attach?: string;
    }
  /** Where the other workers take values pushed to them: their names and peer addresses. */
  | { readonly t: 'peers'; readonly peers: readonly (readonly [worker: string, url: string])[] }
  | {
      readonly t: 'load';
      readonly request: number;
      readonly partition: string;
      /** The serialized subgraph (serializeGraph). */
      readonly graph: Uint8Array;
      readonly memory: WireMemory | null;
      readonly inputs: readonly WireInput[];
      readonly outputs: readonly WireOutput[];
    }
  | {
      readonly t: 'run';
      readonly run: number;
      readonly partition: string;
      /** The partition's 'arg' inputs, in order. */
      readonly args: readonly WireTensor[];
    }
  | {
      readonly t: 'setVariables';
      readonly request: number;
      readonly variables: readonly (readonly [string, WireTensor])[];
    }
  | { readonly t: 'getVariables'; readonly request: number; readonly names: readonly string[] }
  /** Frees variables the worker holds (a finished job's): their memory goes back to the device. */
  | { readonly t: 'dropVariables'; readonly request: number; readonly names: readonly string[] }
  | { readonly t: 'unload'; readonly request: number; readonly partitions: readonly string[] }
  /**
   * Runs whose step succeeded everywhere: the variable values their partitions staged become the
   * variables' values, in the order they were staged. Committing a run twice changes nothing.
   */
  | { readonly t: 'commit'; readonly runs: readonly number[] }
  /**
   * Runs that failed or were cancelled: drop the values kept for them and the variable values they
   * staged, so no variable changes. Releasing a run twice changes nothing.
   */
  | { readonly t: 'release'; readonly runs: readonly number[] }
  | { readonly t: 'close' };

/** A failure, with what it failed in: a run's partition, or a request. */
export interface WireError {
  readonly code: string;
  readonly message: string;
}

export type FromWorker =
  /** The first message on a run link: which worker's, by the key its hello gave. */
  | { readonly t: 'attach'; readonly worker: string; readonly key: string }
  | {
      readonly t: 'ready';
      readonly version: number;
      readonly worker: string;
      /** What the worker's device can run, for placing nodes without a device of one's own. */
      readonly device: DeviceCapabilities;
      /** Where other workers reach it for the data plane (worker processes; threads have ports). */
      readonly peer?: string;
    }
  | { readonly t: 'ok'; readonly request: number }
  | {
      readonly t: 'done';
      readonly run: number;
      readonly partition: string;
      /** The partition's 'return' outputs, in order. */
      readonly results: readonly WireTensor[];
      readonly seconds: number;
    }
  | {
      readonly t: 'variables';
      readonly request: number;
      readonly variables: readonly (readonly [string, WireTensor])[];
    }
  | {
      readonly t: 'failed';
      readonly run: number | null;
      readonly partition: string | null;
      readonly request: number | null;
      readonly error: WireError;
    };

// ---- validation: a message from a peer is untrusted until it has passed these ----

const MAX_RANK = 32;

export function protocolError(message: string): KilnError {
  return new KilnError('protocol', `protocol: ${message}`);
}

export type Obj = Record<string, unknown>;

/**
 * A map, as a peer can send one: a plain object. Not an array, bytes, or any of the other classes
 * a msgpack reader can make from hostile bytes (typed arrays, dates, sets, errors), which would
 * otherwise stand in for a map and be carried on as one.
 */
export function object(x: unknown, where: string): Obj {
  const proto = typeof x === 'object' && x !== null ? Object.getPrototypeOf(x) : undefined;
  if (Array.isArray(x) || (proto !== Object.prototype && proto !== null))
    throw protocolError(`${where}: expected an object`);
  return x as Obj;
}

export function str(o: Obj, key: string, where: string): string {
  const v = o[key];
  if (typeof v !== 'string') throw protocolError(`${where}.${key}: expected a string`);
  return v;
}

/** A safe integer, at least 0. */
export const isUint = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/**
 * msgpack has a float -0, which passes isUint; it is read as the 0 it stands for, so an id, size or
 * duration sent back out is the one received (msgpack writers turn -0 into 0 anyway).
 */
export const unsigned = (v: number): number => v + 0;

export function uint(o: Obj, key: string, where: string): number {
  const v = o[key];
  if (!isUint(v)) throw protocolError(`${where}.${key}: expected a nonnegative integer`);
  return unsigned(v);
}

function nullable<T>(o: Obj, key: string, read: (o: Obj, key: string, where: string) => T, where: string) {
  return o[key] === null ? null : read(o, key, where);
}

export function array(o: Obj, key: string, where: string): unknown[] {
  const v = o[key];
  if (!Array.isArray(v)) throw protocolError(`${where}.${key}: expected an array`);
  return v;
}

function bytes(o: Obj, key: string, where: string): Uint8Array {
  const v = o[key];
  if (!(v instanceof Uint8Array)) throw protocolError(`${where}.${key}: expected bytes`);
  return v;
}

export function parseTensor(x: unknown, where: string): WireTensor {
  const o = object(x, where);
  const dtype = o.dtype;
  if (typeof dtype !== 'string' || !isDType(dtype)) throw protocolError(`${where}.dtype: not a kiln dtype`);
  const shape = array(o, 'shape', where);
  if (shape.length > MAX_RANK) throw protocolError(`${where}.shape: rank ${shape.length} over ${MAX_RANK}`);
  let size = 1;
  const dims = shape.map((d) => {
    if (!isUint(d)) throw protocolError(`${where}.shape: dimensions must be nonnegative integers`);
    size *= d;
    return unsigned(d);
  });
  const data = bytes(o, 'bytes', where);
  const expected = size * (dtype === 'bool' ? 1 : 4);
  if (data.byteLength !== expected)
    throw protocolError(
      `${where}: ${data.byteLength} bytes do not fill a ${dtype}[${dims.join(',')}] (${expected} bytes)`,
    );
  return { dtype, shape: dims, bytes: data };
}

function pairs(o: Obj, key: string, where: string): [string, WireTensor][] {
  return array(o, key, where).map((p, i) => {
    if (!Array.isArray(p) || p.length !== 2 || typeof p[0] !== 'string')
      throw protocolError(`${where}.${key}[${i}]: expected [name, tensor]`);
    return [p[0], parseTensor(p[1], `${where}.${key}[${i}]`)];
  });
}

export function oneOf<K extends string>(value: string, allowed: readonly K[], where: string): K {
  if (!(allowed as readonly string[]).includes(value))
    throw protocolError(`${where}: '${clip(value)}' is not one of ${allowed.join(', ')}`);
  return value as K;
}

/** Bounds on a capability report: far above any real device, far below what would hurt. */
const MAX_OPS = 1024;
const MAX_OP_DTYPES = 16;
const MAX_NAME = 200;

export function shortString(x: unknown, where: string): string {
  if (typeof x !== 'string' || x.length > MAX_NAME)
    throw protocolError(`${where}: expected a string of at most ${MAX_NAME} characters`);
  return x;
}

export function capabilities(x: unknown, where: string): DeviceCapabilities {
  const d = object(x, where);
  const name = shortString(d.name, `${where}.name`);
  const kind = shortString(d.kind, `${where}.kind`);
  const info = object(d.info, `${where}.info`);
  const rate = (key: string) => {
    const v = info[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)
      throw protocolError(`${where}.info.${key}: expected a positive number`);
    return v;
  };
  const ops = array(d, 'ops', where);
  if (ops.length > MAX_OPS) throw protocolError(`${where}.ops: more than ${MAX_OPS} ops`);
  return {
    name,
    kind,
    info: { flopsPerSecond: rate('flopsPerSecond'), bytesPerSecond: rate('bytesPerSecond') },
    ops: ops.map((entry, i) => {
      const at = `${where}.ops[${i}]`;
      if (!Array.isArray(entry) || entry.length !== 2 || !Array.isArray(entry[1]))
        throw protocolError(`${at}: expected [op, dtypes]`);
      const sigs = entry[1] as unknown[];
      if (sigs.length > MAX_OP_DTYPES) throw protocolError(`${at}: more than ${MAX_OP_DTYPES} dtypes`);
      return [
        shortString(entry[0], `${at}[0]`),
        sigs.map((sig, j) => shortString(sig, `${at}[1][${j}]`)),
      ] as const;
    }),
  };
}

/** Checks a message a worker received; throws a KilnError('protocol') naming the bad field. */
export function parseToWorker(x: unknown): ToWorker {
  const o = object(x, 'message');
  const t = str(o, 't', 'message');
  const w = `'${t}' message`;
  switch (t) {
    case 'hello': {
      const attach = o.attach === undefined ? undefined : shortString(o.attach, `${w}.attach`);
      return {
        t,
        version: uint(o, 'version', w),
        worker: str(o, 'worker', w),
        ...(attach !== undefined ? { attach } : {}),
      };
    }
    case 'peers':
      return {
        t,
        peers: array(o, 'peers', w).map((p, i) => {
          if (!Array.isArray(p) || p.length !== 2)
            throw protocolError(`${w}.peers[${i}]: expected [worker, url]`);
          const url = shortString(p[1], `${w}.peers[${i}][1]`);
          if (!/^wss?:\/\//.test(url))
            throw protocolError(`${w}.peers[${i}][1]: not a ws:// or wss:// address`);
          return [shortString(p[0], `${w}.peers[${i}][0]`), url] as const;
        }),
      };
    case 'load': {
      const memory =
        o.memory === null
          ? null
          : (() => {
              const m = object(o.memory, `${w}.memory`);
              const offsets = array(m, 'offsets', `${w}.memory`).map((p, i) => {
                if (!Array.isArray(p) || p.length !== 2 || !p.every(isUint))
                  throw protocolError(`${w}.memory.offsets[${i}]: expected [value, offset]`);
                return [unsigned(p[0]!), unsigned(p[1]!)] as const;
              });
              const order = array(m, 'order', `${w}.memory`).map((n, i) => {
                if (!isUint(n)) throw protocolError(`${w}.memory.order[${i}]: expected a node id`);
                return unsigned(n);
              });
              return { order, arenaBytes: uint(m, 'arenaBytes', `${w}.memory`), offsets };
            })();
      const io = <K extends string>(key: string, kinds: readonly K[]) =>
        array(o, key, w).map((e, i) => {
          const at = `${w}.${key}[${i}]`;
          const item = object(e, at);
          const keep =
            item.keep === undefined
              ? undefined
              : array(item, 'keep', at).map((k, j) => {
                  if (typeof k !== 'string') throw protocolError(`${at}.keep[${j}]: expected a string`);
                  return k;
                });
          const push =
            item.push === undefined
              ? undefined
              : array(item, 'push', at).map((p, j) => {
                  if (
                    !Array.isArray(p) ||
                    p.length !== 2 ||
                    typeof p[0] !== 'string' ||
                    typeof p[1] !== 'string'
                  )
                    throw protocolError(`${at}.push[${j}]: expected [worker, key]`);
                  return [p[0], p[1]] as const;
                });
          return {
            kind: oneOf(str(item, 'kind', at), kinds, `${at}.kind`),
            name: str(item, 'name', at),
            ...(keep ? { keep } : {}),
            ...(push ? { push } : {}),
          };
        });
      return {
        t,
        request: uint(o, 'request', w),
        partition: str(o, 'partition', w),
        graph: bytes(o, 'graph', w),
        memory,
        inputs: io('inputs', ['variable', 'arg', 'local', 'peer'] as const).map(({ kind, name }) => ({
          kind,
          name,
        })),
        outputs: io('outputs', ['return', 'assign', 'keep'] as const),
      };
    }
    case 'run':
      return {
        t,
        run: uint(o, 'run', w),
        partition: str(o, 'partition', w),
        args: array(o, 'args', w).map((a, i) => parseTensor(a, `${w}.args[${i}]`)),
      };
    case 'setVariables':
      return { t, request: uint(o, 'request', w), variables: pairs(o, 'variables', w) };
    case 'getVariables':
    case 'dropVariables':
      return {
        t,
        request: uint(o, 'request', w),
        names: array(o, 'names', w).map((n, i) => {
          if (typeof n !== 'string') throw protocolError(`${w}.names[${i}]: expected a string`);
          return n;
        }),
      };
    case 'unload':
      return {
        t,
        request: uint(o, 'request', w),
        partitions: array(o, 'partitions', w).map((n, i) => {
          if (typeof n !== 'string') throw protocolError(`${w}.partitions[${i}]: expected a string`);
          return n;
        }),
      };
    case 'commit':
    case 'release':
      return {
        t,
        runs: array(o, 'runs', w).map((n, i) => {
          if (!isUint(n)) throw protocolError(`${w}.runs[${i}]: expected a run id`);
          return unsigned(n);
        }),
      };
    case 'close':
      return { t };
    default:
      throw protocolError(`unknown message type '${clip(t)}'`);
  }
}

/** Checks a message the coordinator received from a worker. */
export function parseFromWorker(x: unknown): FromWorker {
  const o = object(x, 'message');
  const t = str(o, 't', 'message');
  const w = `'${t}' message`;
  switch (t) {
    case 'attach':
      return { t, worker: shortString(o.worker, `${w}.worker`), key: shortString(o.key, `${w}.key`) };
    case 'ready': {
      const peer = o.peer === undefined ? undefined : shortString(o.peer, `${w}.peer`);
      if (peer !== undefined && !/^wss?:\/\//.test(peer))
        throw protocolError(`${w}.peer: not a ws:// or wss:// address`);
      return {
        t,
        version: uint(o, 'version', w),
        worker: str(o, 'worker', w),
        device: capabilities(o.device, `${w}.device`),
        ...(peer !== undefined ? { peer } : {}),
      };
    }
    case 'ok':
      return { t, request: uint(o, 'request', w) };
    case 'done': {
      const seconds = o.seconds;
      if (typeof seconds !== 'number' || !(seconds >= 0))
        throw protocolError(`${w}.seconds: expected a duration`);
      return {
        t,
        run: uint(o, 'run', w),
        partition: str(o, 'partition', w),
        results: array(o, 'results', w).map((r, i) => parseTensor(r, `${w}.results[${i}]`)),
        seconds: unsigned(seconds),
      };
    }
    case 'variables':
      return { t, request: uint(o, 'request', w), variables: pairs(o, 'variables', w) };
    case 'failed': {
      const error = object(o.error, `${w}.error`);
      return {
        t,
        run: nullable(o, 'run', uint, w),
        partition: nullable(o, 'partition', str, w),
        request: nullable(o, 'request', uint, w),
        error: { code: str(error, 'code', `${w}.error`), message: str(error, 'message', `${w}.error`) },
      };
    }
    default:
      throw protocolError(`unknown message type '${clip(t)}'`);
  }
}

/** Checks a message a worker received from another worker. */
export function parsePeerMessage(x: unknown): PeerMessage {
  const o = object(x, 'message');
  const t = str(o, 't', 'message');
  const w = `'${t}' message`;
  switch (t) {
    case 'tensor':
      return {
        t,
        run: uint(o, 'run', w),
        key: shortString(o.key, `${w}.key`),
        tensor: parseTensor(o.tensor, `${w}.tensor`),
      };
    case 'peer':
      return { t, version: uint(o, 'version', w), from: shortString(o.from, `${w}.from`) };
    default:
      throw protocolError(`unknown peer message type '${clip(t)}'`);
  }
}
