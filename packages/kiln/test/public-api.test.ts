import { describe, expect, it } from 'vitest';
import * as kiln from '../src/index.js';
import * as plugin from '../src/plugin.js';

describe('the public API', () => {
  it('names what programs need and leaves kiln internals out', () => {
    const names = Object.keys(kiln);
    for (const used of [
      'Graph',
      'Session',
      'tensor',
      'compile',
      'script',
      'valueAndGrad',
      'Adam',
      'ThreadPool',
      'connect',
    ])
      expect(names).toContain(used);
    for (const internal of [
      'crc32',
      'decodeMsgpack',
      'encodeFrame',
      'randomFusedProgram',
      'RunScheduler',
      'WorkerPool',
      'Coordinator',
      'HostExecutable',
    ])
      expect(names).not.toContain(internal);
    expect(names.length).toBeLessThan(150);
  });

  it('gives plugin authors their own entry point: the ABI, HostDevice and the kit', () => {
    for (const name of [
      'HostDevice',
      'KERNEL_ABI_VERSION',
      'REFERENCE_KERNELS',
      'runConformance',
      'PRIMITIVE_OP_NAMES',
      'kernelSupport',
    ])
      expect(Object.keys(plugin)).toContain(name);
    expect(plugin.KERNEL_ABI_VERSION).toBe(2);
  });
});
