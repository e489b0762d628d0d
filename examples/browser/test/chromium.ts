import { existsSync } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';

/** Debian's Chromium (from .ci/install-browser-deps.sh); playwright-core never downloads one. */
export const CHROMIUM = process.env.KILN_CHROMIUM ?? '/usr/bin/chromium';

export const chromiumMissing = existsSync(CHROMIUM)
  ? null
  : `${CHROMIUM} not found: the Chromium end-to-end test is skipped (run .ci/install-browser-deps.sh)`;

/**
 * Command-line flags per configuration. Headless Chromium exposes navigator.gpu on a secure
 * origin but returns no adapter by default; --enable-unsafe-webgpu lets Dawn use a Vulkan
 * implementation it would otherwise refuse (here Chromium's bundled SwiftShader, a CPU one).
 */
export const FLAGS = {
  default: [],
  webgpu: ['--enable-unsafe-webgpu'],
} as const satisfies Record<string, readonly string[]>;

export function launch(flags: readonly string[]): Promise<Browser> {
  // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', ...flags] });
}

export interface AdapterProbe {
  readonly gpu: boolean;
  readonly adapter: { vendor: string; architecture: string } | null;
}

/** Asks the browser itself, on `url`'s origin, whether navigator.gpu exists and gives an adapter. */
export async function probeAdapter(browser: Browser, url: string): Promise<AdapterProbe> {
  const page = await browser.newPage();
  try {
    // A page of the same origin, since WebGPU is exposed only in secure contexts such as 127.0.0.1.
    await page.goto(new URL('digits.json', url).href);
    return await page.evaluate(async () => {
      const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
      if (!gpu) return { gpu: false, adapter: null };
      const adapter = await gpu.requestAdapter();
      if (!adapter) return { gpu: true, adapter: null };
      const info = (adapter as GPUAdapter & { info?: GPUAdapterInfo }).info;
      return { gpu: true, adapter: { vendor: info?.vendor ?? '', architecture: info?.architecture ?? '' } };
    });
  } finally {
    await page.close();
  }
}
