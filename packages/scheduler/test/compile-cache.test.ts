import { CpuDevice } from '@kiln/backend-cpu';
import { matmul, sum } from '@kiln/ir';
import { compile, EagerContext, type Tensor } from '@kiln/scheduler';
import { describe, expect, it } from 'vitest';

/**
 * A compiled function called with more input shapes than its cache holds drops the least recently
 * used trace, and must free it at once: a loop that never yields to the event loop must not pile
 * up dropped executables (it kept 640 against 32 entries, 92 MB after 4,000 retraces).
 */
describe('the compile cache', () => {
  it('frees what it evicts at once, inside a synchronous loop', () => {
    const eager = new EagerContext(new CpuDevice({ name: 'cpu:compile-cache' }));
    // matmul's result is an intermediate of the compiled program: its working memory, reserved
    // on the device while the executable lives.
    const f = compile((x: Tensor) => sum(matmul(x, x)), { cacheSize: 8, retraceWarningAt: 1000 });
    let most = 0;
    for (let n = 1; n <= 200; n++) {
      const x = eager.constant({ dtype: 'float32', shape: [n, n], data: new Float32Array(n * n) });
      f(x).dispose();
      x.dispose();
      most = Math.max(most, eager.device.bytesInUse);
    }
    // Eight cached programs of at most 200x200 float32 intermediates, and nothing else.
    expect(f.stats.cached).toBe(8);
    expect(eager.device.bytesInUse).toBeLessThanOrEqual(8 * 200 * 200 * 4);
    expect(most).toBeLessThanOrEqual(9 * 200 * 200 * 4);
    f.clear();
    expect(eager.device.bytesInUse).toBe(0);
  });
});
