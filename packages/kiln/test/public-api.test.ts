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

  it('exports the function of every op a program calls (the gradient ops stay in OP_FUNCTIONS)', () => {
    const gradientOps = ['conv2dBackpropInput', 'conv2dBackpropFilter', 'maxPoolGrad', 'avgPoolGrad'];
    const missing = Object.keys(kiln.OP_FUNCTIONS).filter((op) => !(op in kiln) && !gradientOps.includes(op));
    expect(missing).toEqual([]);
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
