import { sizeOf } from '@kiln/ir';
import { type Dispatch, ENTRY, floatBits, type TensorArg, u32, WG } from '../shader.js';
import { THREEFRY_WGSL } from '../wgsl/threefry.js';
import { type KernelFactory, read, write } from './kernel.js';

type Attrs = Readonly<Record<string, unknown>>;

/**
 * randomUniform / randomNormal: element i draws threefry with key (seed, 0) and counter
 * (i, counter + offset), the offset being the optional int32 scalar input. Params:
 * [count, seed, counter, a, b] with (a, b) = (low, high) or (mean, stddev) as float bits.
 */
export function randomKernel(kind: 'uniform' | 'normal'): KernelFactory<Attrs> {
  return (a): Dispatch[] => {
    const out = a.outputs[0]!;
    const count = sizeOf(out.shape);
    if (count === 0) return [];
    const hasOffset = a.inputs.length > 0;
    const tensors: TensorArg[] = hasOffset ? [read(a.ins[0]!, 'int32')] : [];
    tensors.push(write(a.outs[0]!, 'float32'));
    const o = hasOffset ? 1 : 0;
    const counter = hasOffset ? 'u32(Pi(2u) + ld0(0u))' : 'P(2u)';
    const value =
      kind === 'uniform'
        ? 'Pf(3u) + (Pf(4u) - Pf(3u)) * unit(w.x)'
        : // Box-Muller; u1 in (0, 1] keeps the log finite.
          'Pf(3u) + Pf(4u) * (sqrt(-2.0 * flog_(unit(w.x) + 1.1920928955078125e-07)) * fcos2pi_(unit(w.y)))';
    const [p, q] =
      kind === 'uniform'
        ? [(a.attrs.low as number | undefined) ?? 0, (a.attrs.high as number | undefined) ?? 1]
        : [(a.attrs.mean as number | undefined) ?? 0, (a.attrs.stddev as number | undefined) ?? 1];
    return [
      {
        key: `random:${kind}:${hasOffset ? 'offset' : 'fixed'}`,
        body: `${THREEFRY_WGSL}
${ENTRY(WG)} {
  let i = gid(wid, nwg) * ${WG}u + lid;
  if (i >= P(0u)) { return; }
  let w = threefry(P(1u), 0u, i, ${counter});
  st${o}(i, ${value});
}`,
        tensors,
        params: [
          count,
          u32(a.attrs.seed as number),
          u32((a.attrs.counter as number | undefined) ?? 0),
          floatBits(p),
          floatBits(q),
        ],
        workgroups: Math.ceil(count / WG),
      },
    ];
  };
}
