import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BuiltPage, buildPage } from '../src/build/build.js';
import {
  DIGITS_FILE,
  type DigitSplit,
  type DigitsManifest,
  MANIFEST_FILE,
  readSplit,
} from '../src/digits-format.js';
import type { PageResult } from '../src/page-result.js';
import { type PageServer, servePage } from '../src/serve.js';
import { CONFIGS, chromiumMissing, launch, pageUrl, probeAdapter, waitForPage } from './chromium.js';

// One visible line when the browser is missing; each test is then skipped with that reason.
if (chromiumMissing) console.warn(`examples/browser: ${chromiumMissing}`);

// Fewer steps than the page's default 200: a software WebGPU adapter (SwiftShader) takes about
// half a second a step here. 60 steps reach about 89% on the CPU.
const STEPS = 60;
// The WebGPU configuration takes 30 s here alone and 35 s beside two CPU-bound processes (2 cores):
// about five times that, with the test's own limit just above, so only a stuck page trips it.
const PAGE_LIMIT_MS = 170_000;

describe('examples/browser in headless Chromium', () => {
  let built: BuiltPage;
  let server: PageServer;
  let test: DigitSplit;

  beforeAll(async () => {
    if (chromiumMissing) return;
    built = await buildPage(await mkdtemp(join(tmpdir(), 'kiln-browser-')));
    server = await servePage(built.dir);
    const manifest = JSON.parse(await readFile(join(built.dir, MANIFEST_FILE), 'utf8')) as DigitsManifest;
    test = readSplit(new Uint8Array(await readFile(join(built.dir, DIGITS_FILE))), manifest.test);
  }, 120_000);

  afterAll(async () => {
    await server?.close();
    if (built) await rm(built.dir, { recursive: true, force: true });
  });

  it.for(Object.keys(CONFIGS) as (keyof typeof CONFIGS)[])(
    'trains, predicts the held-out digits and uses WebGPU exactly when there is an adapter (%s)',
    { timeout: PAGE_LIMIT_MS + 10_000 },
    async (config, context) => {
      if (chromiumMissing) return context.skip(chromiumMissing);
      const { flags } = CONFIGS[config];
      const url = pageUrl(CONFIGS[config], server.url);
      const browser = await launch(flags);
      try {
        const probe = await probeAdapter(browser, url);
        console.log(
          `examples/browser (${config}: ${url}, flags: ${flags.join(' ') || 'none'}): ` +
            (probe.adapter
              ? `WebGPU adapter ${probe.adapter.vendor} ${probe.adapter.architecture}`
              : probe.gpu
                ? 'navigator.gpu gives no adapter'
                : 'no navigator.gpu'),
        );

        const page = await browser.newPage();
        const errors: string[] = [];
        page.on('pageerror', (e) => errors.push(e.message));
        await page.goto(`${url}?steps=${STEPS}`);
        await waitForPage(page, PAGE_LIMIT_MS);
        expect(await page.textContent('#error')).toBe('');
        expect(errors).toEqual([]);
        const result = JSON.parse((await page.textContent('#result-json')) ?? '') as PageResult;
        const deviceText = (await page.textContent('#device')) ?? '';

        console.log(
          `examples/browser (${config}): trained on ${result.deviceName}` +
            `${result.fallbackReason ? ` (fallback: ${result.fallbackReason})` : ''}, ` +
            `${result.steps} steps in ${result.trainSeconds.toFixed(1)} s, accuracy ${(result.accuracy * 100).toFixed(2)}%`,
        );

        // The backend agrees with what the browser offers: WebGPU exactly where requestAdapter()
        // gives an adapter, the CPU where navigator.gpu is missing or gives none.
        expect(result.gpu).toBe(probe.adapter ? 'adapter' : probe.gpu ? 'no-adapter' : 'absent');
        expect(result.device).toBe(probe.adapter ? 'webgpu' : 'cpu');
        expect(result.fallbackReason).toBeUndefined();
        if (probe.adapter) expect(result.adapter?.architecture).toBe(probe.adapter.architecture);
        expect(deviceText).toMatch(result.device === 'webgpu' ? /^WebGPU/ : /^CPU/);
        // Chromium has WebAssembly SIMD: a CPU device runs matmul on it, and says so.
        if (result.device === 'cpu') {
          expect(result.cpuKernels).toBe('webassembly-simd');
          expect(deviceText).toContain('WebAssembly SIMD kernels');
        } else expect(result.cpuKernels).toBeUndefined();

        // The accuracy shown is what the predictions score against the true labels, and is good.
        expect(result.predictions).toHaveLength(test.count);
        const correct = result.predictions.filter((p, i) => p === test.labels[i]).length;
        expect(result.accuracy).toBeCloseTo(correct / test.count, 10);
        expect(result.accuracy).toBeGreaterThan(0.85);
        expect(result.steps).toBe(STEPS);
        expect(result.lastLoss).toBeLessThan(result.firstLoss);
        expect(await page.textContent('#accuracy')).toContain(`${(result.accuracy * 100).toFixed(2)}%`);

        // The digits drawn on the page carry their true label and the prediction for them.
        const shown = await page.$$eval('#digits figure', (figures) =>
          figures.map((f) => ({ label: Number(f.dataset.label), predicted: Number(f.dataset.predicted) })),
        );
        expect(shown.length).toBeGreaterThan(10);
        shown.forEach(({ label, predicted }, i) => {
          expect(label).toBe(test.labels[i]);
          expect(predicted).toBe(result.predictions[i]);
        });
      } finally {
        await browser.close();
      }
    },
  );
  it('trains on the CPU with the WebAssembly SIMD kernels and with the TypeScript ones, the same page', {
    timeout: 2 * PAGE_LIMIT_MS,
  }, async (context) => {
    if (chromiumMissing) return context.skip(chromiumMissing);
    const browser = await launch(CONFIGS.default.flags);
    try {
      const runs: PageResult[] = [];
      for (const query of ['', '&kernels=typescript']) {
        const page = await browser.newPage();
        await page.goto(`${pageUrl(CONFIGS.default, server.url)}?steps=${STEPS}${query}`);
        await waitForPage(page, PAGE_LIMIT_MS);
        expect(await page.textContent('#error')).toBe('');
        runs.push(JSON.parse((await page.textContent('#result-json')) ?? '') as PageResult);
        await page.close();
      }
      const [simd, typescript] = runs as [PageResult, PageResult];
      expect(simd.cpuKernels).toBe('webassembly-simd');
      expect(typescript.cpuKernels).toBe('typescript');
      for (const r of runs) expect(r.accuracy).toBeGreaterThan(0.85);
      const rate = (r: PageResult) => (r.steps * r.batchSize) / r.trainSeconds;
      console.log(
        `examples/browser, CPU device in Chromium: ${rate(simd).toFixed(0)} samples/s on the WebAssembly SIMD kernels, ` +
          `${rate(typescript).toFixed(0)} on the TypeScript ones (${(rate(simd) / rate(typescript)).toFixed(2)}x)`,
      );
    } finally {
      await browser.close();
    }
  });
});
