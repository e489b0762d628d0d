import { clip, type KilnErrorCode } from '@kiln/ir';
import { decodeFrame, encodeFrameParts } from '../cluster/codec.js';
import { object, protocolError, shortString, str, uint } from '../cluster/protocol.js';
import type { JobEvent, JobInfo } from './job-events.js';
import type { EventsFrom } from './jobs-api.js';

/**
 * What a jobs client (`connectJobs`, the CLI) and a coordinator say to each other, on the
 * coordinator's port at JOBS_PATH: the job service as requests with ids, answered in any order,
 * and followed jobs as a stream of events per follow id. A spec travels as the job store keeps
 * it (encodeJobSpec), and the coordinator validates it again. Every message from a client is
 * checked on arrival; a bad one closes the connection. Version 2 streams frames with tensors as
 * the worker protocol's version 3 does.
 */
export const JOBS_PROTOCOL_VERSION = 2;
export const JOBS_PATH = '/jobs';

export type ToJobs =
  | { readonly t: 'hello'; readonly version: number }
  | { readonly t: 'submit'; readonly id: number; readonly spec: Uint8Array }
  | { readonly t: 'list'; readonly id: number }
  | { readonly t: 'info'; readonly id: number; readonly job: string }
  | { readonly t: 'cancel'; readonly id: number; readonly job: string }
  | { readonly t: 'metric'; readonly id: number; readonly job: string; readonly name: string }
  | { readonly t: 'follow'; readonly id: number; readonly job: string; readonly from: EventsFrom }
  | { readonly t: 'unfollow'; readonly id: number };

export type FromJobs =
  | { readonly t: 'welcome'; readonly version: number }
  | { readonly t: 'job'; readonly id: number; readonly job: JobInfo }
  | { readonly t: 'jobs'; readonly id: number; readonly jobs: readonly JobInfo[] }
  | { readonly t: 'metric'; readonly id: number; readonly points: readonly (readonly [number, number])[] }
  | { readonly t: 'event'; readonly id: number; readonly event: JobEvent }
  /** A followed job's stream ended (the job ended, or it was unfollowed). */
  | { readonly t: 'end'; readonly id: number }
  | { readonly t: 'error'; readonly id: number; readonly code: KilnErrorCode; readonly message: string };

export const encodeJobsFrame = (m: ToJobs | FromJobs): Uint8Array[] => encodeFrameParts(m);

/** A spec's bytes: far above a real model's graph, far below what would hurt the coordinator. */
const MAX_SPEC_BYTES = 256 << 20;

export function parseToJobs(x: unknown): ToJobs {
  const o = object(x, 'message');
  const t = str(o, 't', 'message');
  const w = `'${clip(t)}' message`;
  const job = () => shortString(o.job, `${w}.job`);
  switch (t) {
    case 'hello':
      return { t, version: uint(o, 'version', w) };
    case 'list':
    case 'unfollow':
      return { t, id: uint(o, 'id', w) };
    case 'info':
    case 'cancel':
      return { t, id: uint(o, 'id', w), job: job() };
    case 'metric':
      return { t, id: uint(o, 'id', w), job: job(), name: shortString(o.name, `${w}.name`) };
    case 'submit': {
      if (!(o.spec instanceof Uint8Array)) throw protocolError(`${w}.spec: expected bytes`);
      if (o.spec.byteLength > MAX_SPEC_BYTES)
        throw protocolError(`${w}.spec: more than ${MAX_SPEC_BYTES} bytes`);
      return { t, id: uint(o, 'id', w), spec: o.spec };
    }
    case 'follow': {
      const from = o.from;
      if (
        !(
          from === 'start' ||
          from === 'now' ||
          (typeof from === 'number' && Number.isSafeInteger(from) && from >= 0)
        )
      )
        throw protocolError(`${w}.from: expected 'start', 'now' or a sequence number`);
      return { t, id: uint(o, 'id', w), job: job(), from };
    }
    default:
      throw protocolError(`unknown message type ${w}`);
  }
}

/** A coordinator's messages are trusted for content (it holds the token) but checked for shape. */
export function parseFromJobs(x: unknown): FromJobs {
  const o = object(x, 'message');
  const t = str(o, 't', 'message');
  if (!['welcome', 'job', 'jobs', 'metric', 'event', 'end', 'error'].includes(t))
    throw protocolError(`unknown message type '${clip(t)}' from the coordinator`);
  if (t !== 'welcome') uint(o, 'id', `'${t}' message`);
  return o as unknown as FromJobs;
}

export const decodeToJobs = (frame: Uint8Array, maxBytes?: number): ToJobs =>
  parseToJobs(decodeFrame(frame, maxBytes));
export const decodeFromJobs = (frame: Uint8Array, maxBytes?: number): FromJobs =>
  parseFromJobs(decodeFrame(frame, maxBytes));
