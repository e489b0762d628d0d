import { checkDevice, checkPlugin, type Device, type DevicePlugin, KilnError } from '@kiln/ir';

/**
 * Device plugins by kind. The scheduler never imports a backend: plugins are registered as objects
 * or by package name (the package exports `plugin`), and each is checked against the kernel ABI
 * version when registered, so a plugin built for another ABI fails here, not mid-run.
 */
export class DeviceRegistry {
  private readonly plugins = new Map<string, DevicePlugin>();

  register(plugin: DevicePlugin): this {
    checkPlugin(plugin);
    const existing = this.plugins.get(plugin.kind);
    if (existing && existing !== plugin) {
      throw new KilnError('abi', `a different plugin of kind '${plugin.kind}' is already registered`);
    }
    this.plugins.set(plugin.kind, plugin);
    return this;
  }

  /** Imports a plugin package (its `plugin` export) and registers it. */
  async registerPackage(name: string): Promise<DevicePlugin> {
    let module: { plugin?: unknown };
    try {
      module = (await import(name)) as { plugin?: unknown };
    } catch (e) {
      throw new KilnError(
        'abi',
        `cannot import device plugin package '${name}': ${e instanceof Error ? e.message : String(e)}`,
        { cause: e },
      );
    }
    if (module.plugin === undefined) throw new KilnError('abi', `package '${name}' has no 'plugin' export`);
    checkPlugin(module.plugin);
    this.register(module.plugin);
    return module.plugin;
  }

  get kinds(): string[] {
    return [...this.plugins.keys()];
  }

  /** A new device of a registered kind, itself checked against the ABI. */
  async create(kind: string, options?: unknown): Promise<Device> {
    const plugin = this.plugins.get(kind);
    if (!plugin) {
      throw new KilnError(
        'abi',
        `no device plugin of kind '${kind}' is registered (registered: ${this.kinds.join(', ') || 'none'})`,
      );
    }
    const device = await plugin.create(options);
    checkDevice(device);
    return device;
  }
}

/**
 * The registry `Session.open`, `useDevice` and a program's own code share: register a plugin once
 * (kiln-tensor registers the CPU) and name devices by kind everywhere after.
 */
export const devices = new DeviceRegistry();
