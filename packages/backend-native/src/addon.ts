import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

/** What a kernel call returns: nothing, or with `offThread` a promise of its outputs written. */
export type Settled<Q extends boolean> = Q extends true ? Promise<void> : undefined;

/** The compiled addon's functions (native/addon.cc). */
export interface NativeAddon {
  /**
   * C[t] = op(A[t]) x op(B[t]) for each batch t. With `offThread`, on the device's kernel thread (native/kernel-thread.h):
   * the call returns a promise that settles once `c` is written.
   */
  sgemmBatched<Q extends boolean = false>(
    transA: boolean,
    transB: boolean,
    m: number,
    n: number,
    k: number,
    a: Float32Array,
    b: Float32Array,
    c: Float32Array,
    aOffsets: Int32Array,
    bOffsets: Int32Array,
    cOffsets: Int32Array,
    offThread?: Q,
  ): Settled<Q>;
  /**
   * A matmul node's oneDNN primitive (native/matmul.cc) for operands stored as `aShape` and
   * `bShape` (rank 2 or more, transposed ones with their last two dimensions swapped) and an
   * output of `outShape`, with a bias of `biasShape` (a row of the output's width) added as the
   * product is stored; throws where oneDNN cannot make it, or only as its reference loops.
   */
  createMatmul(
    aShape: Float64Array,
    bShape: Float64Array,
    outShape: Float64Array,
    transA: boolean,
    transB: boolean,
    biasShape?: Float64Array,
  ): object;
  /** Runs a createMatmul primitive (`bias` null for one made without); with `offThread`, on the kernel thread. */
  runMatmul<Q extends boolean = false>(
    matmul: object,
    a: Float32Array,
    b: Float32Array,
    bias: Float32Array | null,
    out: Float32Array,
    threads: number,
    offThread?: Q,
  ): Settled<Q>;
  /**
   * An elementwise program (program.ts) over `inputCount` inputs read through their strides over
   * `shape`, checked once: the handle runProgram takes.
   */
  createProgram(
    code: Int32Array,
    inputCount: number,
    strides: Float64Array,
    shape: Float64Array,
    outputSlots: Int32Array,
  ): object;
  /**
   * Runs on up to `threads` threads when large (0: OpenMP's default); with `offThread`, on a
   * kernel thread, settling once the outputs are written.
   */
  runProgram<Q extends boolean = false>(
    program: object,
    inputs: readonly (Float32Array | Uint8Array)[],
    outputs: readonly (Float32Array | Uint8Array)[],
    threads: number,
    offThread?: Q,
  ): Settled<Q>;
  /**
   * Runs `program` through the generated loop in the shared library at `library` from now on, for
   * arrays of the kinds in `bools` (1 per bool input, then output). Throws where the library is
   * not one made for this program's layout.
   */
  attachGroup(program: object, library: string, bools: Uint8Array): void;
  /** The offset of an ArrayBuffer's first byte on a 64-byte cache line (0 to 63). */
  alignedStart(bytes: ArrayBuffer): number;
  /** Where a typed array's first element lies, modulo 64. */
  addressOf(array: ArrayBufferView): number;
  /** A reduction (0 sum, 1 mean, 2 prod, 3 max, 4 min) of x as [outer, reduced, inner]. */
  reduceF32(
    kind: number,
    x: Float32Array,
    outer: number,
    reduced: number,
    inner: number,
    out: Float32Array,
  ): void;
  /**
   * Softmax, or with `log` logSoftmax, along the middle axis of x seen as [outer, n, inner], into
   * `out` of the same length; on up to `threads` threads when large (0: OpenMP's default). With
   * `offThread`, on the kernel thread, settling once `out` is written.
   */
  softmaxF32<Q extends boolean = false>(
    x: Float32Array,
    outer: number,
    n: number,
    inner: number,
    log: boolean,
    out: Float32Array,
    threads: number,
    offThread?: Q,
  ): Settled<Q>;
  /** A pooling (0 max, 1 avg, 2 max gradient, 3 avg gradient) over clipped NHWC windows. */
  poolF32(
    kind: number,
    sizes: Float64Array,
    yStart: Int32Array,
    yEnd: Int32Array,
    xStart: Int32Array,
    xEnd: Int32Array,
    x: Float32Array,
    dy: Float32Array,
    out: Float32Array,
  ): void;
  /** A oneDNN convolution primitive (0 forward, 1 backward data, 2 backward weights) for a geometry. */
  createConv(kind: number, geometry: Float64Array): object;
  /** With `offThread`, on the kernel thread, settling once `out` is written. */
  runConv<Q extends boolean = false>(
    handle: object,
    a: Float32Array,
    b: Float32Array,
    out: Float32Array,
    aLength: number,
    bLength: number,
    outLength: number,
    threads: number,
    offThread?: Q,
  ): Settled<Q>;
  threads(): number;
  setThreads(n: number): void;
  /** OpenBLAS's build configuration, such as 'OpenBLAS 0.3.21 DYNAMIC_ARCH ... Haswell MAX_THREADS=64'. */
  readonly blas: string;
  /** The kernels OpenBLAS runs here, such as 'SkylakeX' or 'Haswell' (OPENBLAS_CORETYPE forces one). */
  readonly blasCore: string;
}

const BUILT = new URL('../build/Release/kiln_native.node', import.meta.url);
const REASON = new URL('../build/unavailable.txt', import.meta.url);

/** The addon, or why there is none: one line, for the user. */
function load(): { addon: NativeAddon } | { reason: string } {
  if (!existsSync(BUILT)) {
    const why = existsSync(REASON) ? readFileSync(REASON, 'utf8').trim() : 'it was not built';
    return {
      reason: `backend-native is unavailable: ${why} (needs g++, make, python3, libopenblas-dev and libdnnl-dev at install)`,
    };
  }
  try {
    return { addon: createRequire(import.meta.url)(BUILT.pathname) as NativeAddon };
  } catch (e) {
    return { reason: `backend-native is unavailable: its addon did not load: ${(e as Error).message}` };
  }
}

const loaded = load();

/** The addon when it was built and loads here; undefined otherwise (see `unavailableReason`). */
export const addon: NativeAddon | undefined = 'addon' in loaded ? loaded.addon : undefined;

/** Why the native device cannot be used here, in one line; undefined when it can. */
export const unavailableReason: string | undefined = 'reason' in loaded ? loaded.reason : undefined;
