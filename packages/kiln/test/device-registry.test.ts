import { afterAll, describe, expect, it } from 'vitest';
import {
  add,
  CpuDevice,
  devices,
  Graph,
  mul,
  Session,
  setDefaultDevice,
  tensor,
  useDevice,
} from '../src/index.js';
import { type DevicePlugin, HostDevice, KERNEL_ABI_VERSION, REFERENCE_KERNELS } from '../src/plugin.js';

/** A third-party plugin, registered by the program as any would be. */
const reference: DevicePlugin<{ name?: string }> = {
  abi: KERNEL_ABI_VERSION,
  kind: 'reference',
  create: (o) => new HostDevice({ name: o?.name ?? 'ref:0', kind: 'reference', kernels: REFERENCE_KERNELS }),
};

describe('devices by kind, through the shared registry', () => {
  afterAll(() => setDefaultDevice(new CpuDevice({ name: 'cpu:0' })));

  it('opens a Session on a registered kind (the CPU is registered on import)', async () => {
    const g = new Graph();
    const x = g.placeholder('float32', [2], 'x');
    const y = mul(x, 3);
    const session = await Session.open(g, { device: 'cpu', deviceOptions: { name: 'cpu:opened' } });
    expect(session.device.name).toBe('cpu:opened');
    expect(Array.from((await session.run(y, { x: [1, 2] })).data)).toEqual([3, 6]);
    await expect(Session.open(g, { device: 'tpu' })).rejects.toThrow(
      /no device plugin of kind 'tpu' is registered \(registered: cpu/,
    );
  });

  it('makes a registered plugin the home of eager tensors with useDevice', async () => {
    devices.register(reference);
    await useDevice('reference', { name: 'ref:1' });
    const t = add(tensor([1, 2]), 1);
    expect(t.device).toBe('ref:1');
    expect(Array.from(t.dataSync())).toEqual([2, 3]);
    expect(devices.kinds).toEqual(['cpu', 'reference']);
  });
});
