import { existsSync } from 'node:fs';
import { type Browser, chromium, type Page } from 'playwright-core';

/** Debian's Chromium (from .ci/install-browser-deps.sh); playwright-core never downloads one. */
export const CHROMIUM = process.env.KILN_CHROMIUM ?? '/usr/bin/chromium';

export const chromiumMissing = existsSync(CHROMIUM)
  ? null
  : `${CHROMIUM} not found: the Chromium end-to-end test is skipped (run .ci/install-browser-deps.sh)`;

/** A way to run the page: Chromium's flags, and the host name the page is loaded from. */
export interface BrowserConfig {
  readonly flags: readonly string[];
  /** Defaults to 127.0.0.1, where the server listens. */
  readonly host?: string;
}

const INSECURE_HOST = 'kiln-example.test';

/**
 * Headless Chromium exposes navigator.gpu on a secure origin but returns no adapter by default;
 * --enable-unsafe-webgpu lets Dawn use a CPU implementation of Vulkan it would otherwise refuse
 * (here Chromium's bundled SwiftShader). On an origin that is not secure, a made-up host name
 * resolved to 127.0.0.1, there is no navigator.gpu at all. The three cover the page's three paths.
 */
export const CONFIGS = {
  default: { flags: [] },
  webgpu: { flags: ['--enable-unsafe-webgpu'] },
  insecure: {
    flags: ['--enable-unsafe-webgpu', `--host-resolver-rules=MAP ${INSECURE_HOST} 127.0.0.1`],
    host: INSECURE_HOST,
  },
} as const satisfies Record<string, BrowserConfig>;

/** `url` (the server's, on 127.0.0.1) as `config` loads it. */
export function pageUrl(config: BrowserConfig, url: string): string {
  const u = new URL(url);
  if (config.host) u.hostname = config.host;
  return u.href;
}

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

/**
 * Waits for the page to finish (done or error). A page that runs out of time fails saying where
 * it was (its state and status line, such as "training: step 40 of 60"), not only that a selector
 * never matched.
 */
export async function waitForPage(page: Page, timeout: number): Promise<void> {
  try {
    await page.waitForSelector('body[data-state=done], body[data-state=error]', { timeout });
  } catch (e) {
    const at = await page
      .evaluate(
        () =>
          `${document.body.dataset.state ?? 'no state'}: ${document.getElementById('status')?.textContent ?? ''}`,
      )
      .catch((why: unknown) => `unknown (${String(why)})`);
    throw new Error(`the page did not finish in ${timeout / 1000} s; it was at ${at}`, { cause: e });
  }
}
