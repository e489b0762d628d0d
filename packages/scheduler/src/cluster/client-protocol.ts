import { clip, type KilnErrorCode } from '@kiln/ir';
import type { DeviceCapabilities } from './capabilities.js';
import type { RequestBody } from './cluster.js';
import { decodeFrame, encodeFrameParts } from './codec.js';
import type { PlacementRecord } from './placement-record.js';
import {
  array,
  capabilities,
  type FromWorker,
  isUint,
  type Obj,
  object,
  oneOf,
  parseFromWorker,
  parseTensor,
  parseToWorker,
  protocolError,
  shortString,
  str,
  uint,
  type WireTensor,
} from './protocol.js';
import type { ScheduledPartition } from './run-scheduler.js';
import type { StoryEntry } from './story.js';
import type { TraceEntry } from './worker-pool.js';

/**
 * What a client (a program that called `connect`) and a standalone coordinator say to each other:
 * the Cluster interface as messages, so a ClusterSession runs the same on a cluster in another
 * process as on one of its own. Requests carry ids and are answered in any order; tensors are
 * msgpack binary, as between coordinator and workers. Every message is validated on arrival.
 * Version 2 streams frames with tensors as the worker protocol's version 3 does.
 */
export const CLIENT_PROTOCOL_VERSION = 2;
/** The path clients connect to; workers use the root. */
export const CLIENT_PATH = '/client';

/** The cluster as a client sees it: refreshed with every `state` reply. */
export interface ClusterState {
  readonly devices: readonly DeviceCapabilities[];
  readonly generations: readonly (readonly [worker: string, generation: number])[];
  readonly homes: readonly (readonly [variable: string, worker: string])[];
}

export type ToCoordinator =
  | { readonly t: 'hello'; readonly version: number }
  /** Waits for replaced workers, then answers with the state. */
  | { readonly t: 'settle'; readonly id: number }
  | {
      readonly t: 'request';
      readonly id: number;
      readonly worker: string;
      readonly what: string;
      readonly body: RequestBody;
    }
  | {
      readonly t: 'execute';
      readonly id: number;
      readonly partitions: readonly ScheduledPartition[];
      readonly fetchCount: number;
      readonly runs: readonly (readonly (readonly [string, WireTensor])[])[];
      readonly timeoutMillis: number | null;
      readonly trace: boolean;
    }
  /** Cancels the execution of request `id`. */
  | { readonly t: 'cancel'; readonly id: number }
  | { readonly t: 'placed'; readonly id: number; readonly record: PlacementRecord }
  | { readonly t: 'story'; readonly id: number; readonly subjects: readonly string[] }
  /** Frees variables on their workers (Cluster.dropVariables); answered with the state. */
  | { readonly t: 'drop'; readonly id: number; readonly variables: readonly string[] }
  /** Bytes between the coordinator and each worker so far. */
  | { readonly t: 'traffic'; readonly id: number };

/** Bytes between the coordinator and one worker so far. */
export interface LinkTraffic {
  readonly worker: string;
  /** Who is at the other end: `worker at 10.0.0.2:51234`. */
  readonly peer: string;
  readonly sent: number;
  readonly received: number;
}

export type FromCoordinator =
  | {
      readonly t: 'welcome';
      readonly version: number;
      /** This client's number: it keeps the partition keys of different clients apart. */
      readonly client: number;
      readonly names: readonly string[];
      readonly state: ClusterState;
    }
  | { readonly t: 'state'; readonly id: number; readonly state: ClusterState }
  | { readonly t: 'answer'; readonly id: number; readonly message: FromWorker }
  | {
      readonly t: 'results';
      readonly id: number;
      readonly results: readonly (readonly WireTensor[])[];
      readonly trace: readonly TraceEntry[];
    }
  | { readonly t: 'story'; readonly id: number; readonly entries: readonly StoryEntry[] }
  | { readonly t: 'traffic'; readonly id: number; readonly links: readonly LinkTraffic[] }
  | { readonly t: 'error'; readonly id: number; readonly code: KilnErrorCode; readonly message: string };

export const encodeClientFrame = (m: ToCoordinator | FromCoordinator): Uint8Array[] => encodeFrameParts(m);

/** Bounds far above a real plan's, far below what would hurt the coordinator. */
const MAX_PARTITIONS = 4096;
const MAX_ITEMS = 1 << 16;
const MAX_TEXT = 4096;

function strings(o: Obj, key: string, where: string, max = MAX_ITEMS): string[] {
  const list = array(o, key, where);
  if (list.length > max) throw protocolError(`${where}.${key}: more than ${max} entries`);
  return list.map((s, i) => shortString(s, `${where}.${key}[${i}]`));
}

function uints(o: Obj, key: string, where: string): number[] {
  const list = array(o, key, where);
  if (list.length > MAX_ITEMS) throw protocolError(`${where}.${key}: more than ${MAX_ITEMS} entries`);
  return list.map((v, i) => {
    if (!isUint(v)) throw protocolError(`${where}.${key}[${i}]: expected a nonnegative integer`);
    return v + 0;
  });
}

function text(o: Obj, key: string, where: string): string {
  const v = str(o, key, where);
  if (v.length > MAX_TEXT) throw protocolError(`${where}.${key}: longer than ${MAX_TEXT} characters`);
  return v;
}

function partition(x: unknown, fetchCount: number, where: string): ScheduledPartition {
  const o = object(x, where);
  const args = array(o, 'args', where).map((a, i) => {
    const arg = object(a, `${where}.args[${i}]`);
    if (typeof arg.feed === 'string') return { feed: shortString(arg.feed, `${where}.args[${i}].feed`) };
    return { value: shortString(arg.value, `${where}.args[${i}].value`) };
  });
  const returns = array(o, 'returns', where).map((r, i) => {
    const ret = object(r, `${where}.returns[${i}]`);
    const fetches = uints(ret, 'fetches', `${where}.returns[${i}]`);
    const beyond = fetches.find((f) => f >= fetchCount);
    if (beyond !== undefined) throw protocolError(`${where}.returns[${i}]: fetch ${beyond} of ${fetchCount}`);
    return { values: strings(ret, 'values', `${where}.returns[${i}]`), fetches };
  });
  const optional = (key: string) => (o[key] === undefined ? {} : { [key]: strings(o, key, where) });
  return {
    key: shortString(o.key, `${where}.key`),
    worker: shortString(o.worker, `${where}.worker`),
    stage: uint(o, 'stage', where),
    ...(o.part === undefined ? {} : { part: uint(o, 'part', where) }),
    args,
    returns,
    ...optional('keeps'),
    ...optional('waits'),
    reads: strings(o, 'reads', where),
    writes: strings(o, 'writes', where),
  };
}

function record(x: unknown, where: string): PlacementRecord {
  const o = object(x, where);
  return {
    plan: shortString(o.plan, `${where}.plan`),
    partitions: array(o, 'partitions', where).map((p, i) => {
      const at = `${where}.partitions[${i}]`;
      const q = object(p, at);
      return {
        key: shortString(q.key, `${at}.key`),
        worker: shortString(q.worker, `${at}.worker`),
        nodes: uint(q, 'nodes', at),
        reasons: array(q, 'reasons', at)
          .slice(0, 8)
          .map((r, j) => text({ r }, 'r', `${at}.reasons[${j}]`)),
      };
    }),
    variables: array(o, 'variables', where).map((v, i) => {
      const at = `${where}.variables[${i}]`;
      const q = object(v, at);
      return {
        name: shortString(q.name, `${at}.name`),
        worker: shortString(q.worker, `${at}.worker`),
        reason: text(q, 'reason', at),
      };
    }),
  };
}

const REQUESTS = ['load', 'setVariables', 'getVariables', 'dropVariables', 'unload'] as const;

/** Checks a message a coordinator received from a client. */
export function parseToCoordinator(x: unknown): ToCoordinator {
  const o = object(x, 'message');
  const t = str(o, 't', 'message');
  const w = `'${clip(t)}' message`;
  switch (t) {
    case 'hello':
      return { t, version: uint(o, 'version', w) };
    case 'settle':
    case 'cancel':
    case 'traffic':
      return { t, id: uint(o, 'id', w) };
    case 'request': {
      const body = object(o.body, `${w}.body`);
      oneOf(str(body, 't', `${w}.body`), REQUESTS, `${w}.body.t`);
      // The body is a worker request without its id: the worker's own validator checks it.
      const { request: _, ...checked } = parseToWorker({ ...body, request: 0 }) as Extract<
        ReturnType<typeof parseToWorker>,
        { request: number }
      >;
      return {
        t,
        id: uint(o, 'id', w),
        worker: shortString(o.worker, `${w}.worker`),
        what: text(o, 'what', w),
        body: checked as RequestBody,
      };
    }
    case 'execute': {
      const fetchCount = uint(o, 'fetchCount', w);
      if (fetchCount > MAX_ITEMS) throw protocolError(`${w}.fetchCount: over ${MAX_ITEMS}`);
      const partitions = array(o, 'partitions', w);
      if (partitions.length > MAX_PARTITIONS)
        throw protocolError(`${w}.partitions: more than ${MAX_PARTITIONS}`);
      const runs = array(o, 'runs', w);
      if (runs.length > MAX_ITEMS) throw protocolError(`${w}.runs: more than ${MAX_ITEMS}`);
      const timeout = o.timeoutMillis;
      if (timeout !== null && !(typeof timeout === 'number' && timeout > 0))
        throw protocolError(`${w}.timeoutMillis: expected a positive number or null`);
      return {
        t,
        id: uint(o, 'id', w),
        partitions: partitions.map((p, i) => partition(p, fetchCount, `${w}.partitions[${i}]`)),
        fetchCount,
        runs: runs.map((r, i) => {
          if (!Array.isArray(r)) throw protocolError(`${w}.runs[${i}]: expected [name, tensor] pairs`);
          return r.map((pair, j) => {
            if (!Array.isArray(pair) || pair.length !== 2)
              throw protocolError(`${w}.runs[${i}][${j}]: expected [name, tensor]`);
            return [
              shortString(pair[0], `${w}.runs[${i}][${j}][0]`),
              parseTensor(pair[1], `${w}.runs[${i}][${j}][1]`),
            ] as const;
          });
        }),
        timeoutMillis: timeout as number | null,
        trace: o.trace === true,
      };
    }
    case 'placed':
      return { t, id: uint(o, 'id', w), record: record(o.record, `${w}.record`) };
    case 'story':
      return { t, id: uint(o, 'id', w), subjects: strings(o, 'subjects', w, 64) };
    case 'drop':
      return { t, id: uint(o, 'id', w), variables: strings(o, 'variables', w) };
    default:
      throw protocolError(`unknown client message type '${clip(t)}'`);
  }
}

function state(x: unknown, where: string): ClusterState {
  const o = object(x, where);
  const pairsOf = (key: string, second: (v: unknown, at: string) => unknown) =>
    array(o, key, where).map((p, i) => {
      if (!Array.isArray(p) || p.length !== 2) throw protocolError(`${where}.${key}[${i}]: expected a pair`);
      return [
        shortString(p[0], `${where}.${key}[${i}][0]`),
        second(p[1], `${where}.${key}[${i}][1]`),
      ] as const;
    });
  return {
    devices: array(o, 'devices', where).map((d, i) => capabilities(d, `${where}.devices[${i}]`)),
    generations: pairsOf('generations', (v, at) => {
      if (!isUint(v)) throw protocolError(`${at}: expected a generation`);
      return v;
    }) as [string, number][],
    homes: pairsOf('homes', (v, at) => shortString(v, at)) as [string, string][],
  };
}

const CODES: readonly KilnErrorCode[] = [
  'shape',
  'invalid-argument',
  'verify',
  'feed',
  'serialization',
  'abi',
  'unsupported',
  'runtime',
  'protocol',
  'worker',
  'cancelled',
  'timeout',
  'limit',
];

function entry(x: unknown, where: string): StoryEntry {
  const o = object(x, where);
  const at = o.at;
  if (typeof at !== 'number' || !Number.isFinite(at)) throw protocolError(`${where}.at: expected a time`);
  return {
    seq: uint(o, 'seq', where),
    stimulus: shortString(o.stimulus, `${where}.stimulus`),
    at,
    event: text(o, 'event', where),
    decisions: array(o, 'decisions', where).map((d, i) => text({ d }, 'd', `${where}.decisions[${i}]`)),
    subjects: strings(o, 'subjects', where),
  };
}

function traceEntry(x: unknown, where: string): TraceEntry {
  const o = object(x, where);
  const num = (key: string) => {
    const v = o[key];
    if (typeof v !== 'number' || !Number.isFinite(v))
      throw protocolError(`${where}.${key}: expected a number`);
    return v;
  };
  return {
    worker: shortString(o.worker, `${where}.worker`),
    run: uint(o, 'run', where),
    partition: shortString(o.partition, `${where}.partition`),
    start: num('start'),
    end: num('end'),
    seconds: num('seconds'),
  };
}

/** Checks a message a client received from its coordinator. */
export function parseFromCoordinator(x: unknown): FromCoordinator {
  const o = object(x, 'message');
  const t = str(o, 't', 'message');
  const w = `'${clip(t)}' message`;
  switch (t) {
    case 'welcome':
      return {
        t,
        version: uint(o, 'version', w),
        client: uint(o, 'client', w),
        names: strings(o, 'names', w),
        state: state(o.state, `${w}.state`),
      };
    case 'state':
      return { t, id: uint(o, 'id', w), state: state(o.state, `${w}.state`) };
    case 'answer':
      return { t, id: uint(o, 'id', w), message: parseFromWorker(o.message) };
    case 'results':
      return {
        t,
        id: uint(o, 'id', w),
        results: array(o, 'results', w).map((r, i) => {
          if (!Array.isArray(r)) throw protocolError(`${w}.results[${i}]: expected tensors`);
          return r.map((x, j) => parseTensor(x, `${w}.results[${i}][${j}]`));
        }),
        trace: array(o, 'trace', w).map((e, i) => traceEntry(e, `${w}.trace[${i}]`)),
      };
    case 'story':
      return {
        t,
        id: uint(o, 'id', w),
        entries: array(o, 'entries', w).map((e, i) => entry(e, `${w}.entries[${i}]`)),
      };
    case 'traffic':
      return {
        t,
        id: uint(o, 'id', w),
        links: array(o, 'links', w).map((l, i) => {
          const at = `${w}.links[${i}]`;
          const link = object(l, at);
          return {
            worker: shortString(link.worker, `${at}.worker`),
            peer: shortString(link.peer, `${at}.peer`),
            sent: uint(link, 'sent', at),
            received: uint(link, 'received', at),
          };
        }),
      };
    case 'error':
      return {
        t,
        id: uint(o, 'id', w),
        code: oneOf(str(o, 'code', w), CODES, `${w}.code`),
        message: str(o, 'message', w),
      };
    default:
      throw protocolError(`unknown coordinator message type '${clip(t)}'`);
  }
}

export const decodeToCoordinator = (frame: Uint8Array, maxBytes?: number): ToCoordinator =>
  parseToCoordinator(decodeFrame(frame, maxBytes));
export const decodeFromCoordinator = (frame: Uint8Array, maxBytes?: number): FromCoordinator =>
  parseFromCoordinator(decodeFrame(frame, maxBytes));
