/**
 * WebGPU's flag values, spelled out: the GPUBufferUsage / GPUMapMode / GPUShaderStage globals exist
 * in browsers but not in Node unless the `webgpu` package's globals are installed, and this entry
 * point must not assume either.
 */
export const BufferUsage = {
  MAP_READ: 0x1,
  COPY_SRC: 0x4,
  COPY_DST: 0x8,
  UNIFORM: 0x40,
  STORAGE: 0x80,
} as const;
export const MAP_READ = 0x1;
export const SHADER_STAGE_COMPUTE = 0x4;
