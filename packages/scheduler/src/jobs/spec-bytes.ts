import { HostTensor, KilnError } from '@kiln/ir';
import { pack, unpack } from 'msgpackr';
import type { JobSpec } from './job-spec.js';

/**
 * A validated job spec as bytes for the job store (msgpack): the graph stays bytes, a run job's
 * feeds become dtype, shape and little-endian bytes. Decoding gives the input parseJobSpec takes,
 * so a stored spec is checked again before a restarted coordinator runs it.
 */
export function encodeJobSpec(spec: JobSpec): Uint8Array {
  if (spec.kind === 'run') {
    const feeds = Object.fromEntries(
      Object.entries(spec.feeds).map(([name, t]) => [
        name,
        {
          dtype: t.dtype,
          shape: [...t.shape],
          bytes: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength),
        },
      ]),
    );
    return pack({ ...spec, feeds });
  }
  return pack(spec);
}

export function decodeJobSpec(bytes: Uint8Array): Record<string, unknown> & { graph: Uint8Array } {
  const raw = unpack(bytes) as Record<string, unknown> & { graph: Uint8Array };
  if (raw.kind !== 'run') return raw;
  const feeds = Object.entries(
    (raw.feeds ?? {}) as Record<string, { dtype: HostTensor['dtype']; shape: number[]; bytes: Uint8Array }>,
  );
  try {
    return {
      ...raw,
      feeds: Object.fromEntries(
        feeds.map(([name, f]) => {
          const copy = f.bytes.slice();
          const data =
            f.dtype === 'float32'
              ? new Float32Array(copy.buffer)
              : f.dtype === 'int32'
                ? new Int32Array(copy.buffer)
                : copy;
          return [name, new HostTensor(f.dtype, f.shape, data)];
        }),
      ),
    };
  } catch (e) {
    throw new KilnError('serialization', `stored job spec: ${(e as Error).message}`, { cause: e });
  }
}
