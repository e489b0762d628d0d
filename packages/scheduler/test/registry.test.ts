import { cpuPlugin } from '@kiln/backend-cpu';
import { KERNEL_ABI_VERSION, KilnError } from '@kiln/ir';
import { DeviceRegistry } from '@kiln/scheduler';
import { describe, expect, it } from 'vitest';

describe('DeviceRegistry', () => {
  it('registers a plugin by package name and creates checked devices', async () => {
    const registry = new DeviceRegistry();
    await registry.registerPackage('@kiln/backend-cpu');
    expect(registry.kinds).toEqual(['cpu']);
    const device = await registry.create('cpu', { name: 'cpu:7' });
    expect(device.name).toBe('cpu:7');
    expect(device.abi).toBe(KERNEL_ABI_VERSION);
  });

  it('refuses a plugin built for another ABI version at registration (a version 1 plugin here)', () => {
    const registry = new DeviceRegistry();
    const err = (() => {
      try {
        registry.register({ ...cpuPlugin, abi: 1 });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(KilnError);
    expect((err as KilnError).code).toBe('abi');
    expect((err as Error).message).toMatch(
      /plugin 'cpu' implements kernel ABI 1, but this kiln speaks ABI 2/,
    );
    expect(registry.kinds).toEqual([]);
  });

  it('refuses a plugin whose devices lack ABI methods, and names unknown kinds and packages', async () => {
    const registry = new DeviceRegistry().register({
      abi: KERNEL_ABI_VERSION,
      kind: 'broken',
      create: () => ({ abi: KERNEL_ABI_VERSION, name: 'b', kind: 'broken' }) as never,
    });
    await expect(registry.create('broken')).rejects.toThrow(
      /device 'b' does not implement allocate, free, write, read, supports, compile, dispose/,
    );
    await expect(registry.create('tpu')).rejects.toThrow(
      /no device plugin of kind 'tpu' is registered \(registered: broken\)/,
    );
    await expect(registry.registerPackage('@kiln/no-such-backend')).rejects.toThrow(
      /cannot import device plugin package '@kiln\/no-such-backend'/,
    );
  });
});
