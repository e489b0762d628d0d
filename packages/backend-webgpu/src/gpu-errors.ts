import { KilnError } from '@kiln/ir';

/**
 * WebGPU reports errors asynchronously, through error scopes. Every group of GPU calls kiln makes
 * for one node runs inside three scopes (validation, out-of-memory, internal); popping them gives
 * the first error, which the caller turns into a KilnError naming that node.
 */
export function pushScopes(device: GPUDevice): void {
  device.pushErrorScope('validation');
  device.pushErrorScope('out-of-memory');
  device.pushErrorScope('internal');
}

/** Pops the scopes pushed by pushScopes: the first error, or null. A lost device reports none. */
export function popScopes(device: GPUDevice): Promise<GPUError | null> {
  const pops = [device.popErrorScope(), device.popErrorScope(), device.popErrorScope()].map((p) =>
    p.catch(() => null),
  );
  return Promise.all(pops).then(([internal, oom, validation]) => validation ?? oom ?? internal ?? null);
}

/** 'validation', 'out-of-memory' or 'internal', from the error's class (no global constructors needed). */
export function gpuErrorKind(error: GPUError): string {
  const name = error.constructor?.name ?? '';
  if (name.includes('OutOfMemory')) return 'out-of-memory';
  if (name.includes('Internal')) return 'internal';
  if (name.includes('Validation')) return 'validation';
  return 'device';
}

/** A KilnError for a GPU error, so callers can wrap it with atNode. */
export function fromGpuError(device: string, error: GPUError, doing: string): KilnError {
  const first = error.message.split('\n').find((l) => l.trim() !== '') ?? error.message;
  return new KilnError(
    'runtime',
    `${device}: WebGPU ${gpuErrorKind(error)} error while ${doing}: ${first.trim()}`,
    {
      cause: error,
    },
  );
}
