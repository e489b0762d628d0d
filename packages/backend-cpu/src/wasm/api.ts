/**
 * The part of the WebAssembly API the kernels use, typed here: the package compiles for Node and
 * the browser without the DOM's type library, and a runtime may lack WebAssembly altogether.
 */
export interface WasmApi {
  validate(bytes: Uint8Array<ArrayBuffer>): boolean;
  Module: new (bytes: Uint8Array<ArrayBuffer>) => object;
  Instance: new (module: object, imports: object) => { readonly exports: Record<string, unknown> };
  Memory: new (descriptor: { initial: number }) => WasmMemory;
}
export interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}

/** This runtime's WebAssembly, if it has one. */
export const api = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;

export const PAGE = 65536;

/** A module of `bytes`, or null where this runtime cannot compile it (no WebAssembly, or no SIMD). */
export function compileModule(bytes: Uint8Array<ArrayBuffer>): object | null {
  try {
    // validate() is false where the engine lacks SIMD: the module then never compiles.
    return api?.validate(bytes) ? new api.Module(bytes) : null;
  } catch {
    return null;
  }
}
