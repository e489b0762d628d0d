import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { add, Graph, HostTensor, matmul, mean, Prng, square, sub, tensor } from 'kiln-tensor';
import { connectJobs, type Jobs, JobsCoordinator, writeSafetensors } from 'kiln-tensor/jobs';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAll, startWorker } from './worker-processes.js';

/**
 * The coordinator's dashboard end to end: a JobsCoordinator in this process with two `kiln
 * worker` processes, and Debian's headless Chromium driven by playwright-core (it downloads no
 * browser). The page signs in with the token, shows a submitted job running with its progress and
 * a drawn loss curve and the worker it holds, cancels it from its own button, and shows it
 * STOPPED, as the jobs API says too. Without the token nothing is served. A screenshot is kept in
 * test-artifacts/.
 */
const TOKEN = 'dashboard-test-token';
const CHROMIUM = process.env.KILN_CHROMIUM ?? '/usr/bin/chromium';
const chromiumMissing = existsSync(CHROMIUM)
  ? null
  : `${CHROMIUM} not found: the dashboard's browser test is skipped (run .ci/install-browser-deps.sh)`;
// One visible line when the browser is missing; the browser test is then skipped with that reason.
if (chromiumMissing) console.warn(`packages/kiln dashboard: ${chromiumMissing}`);

const ARTIFACTS = fileURLToPath(new URL('../test-artifacts/', import.meta.url));
/** uPlot draws the loss series in the page's accent, #2563eb. */
const SERIES_RGB = [37, 99, 235] as const;

let dir: string;
let coordinator: JobsCoordinator | undefined;
let jobs: Jobs | undefined;
let browser: Browser | undefined;
const coordinatorLog: string[] = [];

/** Linear regression on exactly linear data: a graph and a dataset a million steps can loop over. */
async function regression() {
  const g = new Graph();
  const x = g.placeholder('float32', [null, 4], 'x');
  const y = g.placeholder('float32', [null, 1], 'y');
  const w = g.variable('w', tensor(g, [0, 0, 0, 0], [4, 1]));
  const b = g.variable('b', tensor(g, [0], [1]));
  g.output('loss', mean(square(sub(add(matmul(x, w), b), y))));
  const rng = new Prng(5);
  const rows = 512;
  const xs = Float32Array.from({ length: rows * 4 }, () => rng.normal());
  const ys = Float32Array.from(
    { length: rows },
    (_, r) => 0.5 + xs[r * 4]! - 2 * xs[r * 4 + 1]! + xs[r * 4 + 3]!,
  );
  const data = join(dir, 'train.safetensors');
  writeSafetensors(data, {
    x: new HostTensor('float32', [rows, 4], xs),
    y: new HostTensor('float32', [rows, 1], ys),
  });
  return {
    name: 'long-regression',
    graph: g,
    loss: 'loss',
    // Small steps: the loss falls slowly, so the curve has a shape to draw for a while.
    optimizer: { kind: 'sgd', learningRate: 0.002 },
    dataset: { files: [data], feeds: { x: 'x', y: 'y' } },
    loop: { steps: 1_000_000, batchSize: 32, seed: 1 },
  };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kiln-dashboard-'));
  coordinator = await JobsCoordinator.listen(
    { workers: 2, token: TOKEN, store: ':memory:', log: (line) => coordinatorLog.push(line) },
    (url) => {
      for (let i = 0; i < 2; i++) startWorker(url, TOKEN);
    },
  );
  jobs = await connectJobs(coordinator.url, { token: TOKEN });
}, 120_000);

afterAll(async () => {
  // Each step on its own: one that fails must not leave the others' processes behind.
  await browser?.close().catch(() => undefined);
  await jobs?.close().catch(() => undefined);
  await coordinator?.close().catch(() => undefined);
  await killAll();
  await rm(dir, { recursive: true, force: true });
});

describe("the coordinator's dashboard", () => {
  it('is served on the coordinator port, and only with the token', async () => {
    const url = coordinator!.dashboardUrl!;
    expect(url).toBe(`${coordinator!.url.replace('ws://', 'http://')}/`);
    for (const path of ['', 'api/overview'])
      expect((await fetch(url + path)).status, `/${path} without a token`).toBe(401);
    const wrong = await fetch(`${url}api/overview`, { headers: { cookie: 'kiln_token=not-the-token' } });
    expect(wrong.status).toBe(401);
    expect(await wrong.text()).toMatch(/^kiln: this dashboard needs its token/);
    const signIn = await fetch(`${url}?token=${TOKEN}`, { redirect: 'manual' });
    expect(signIn.status).toBe(303);
    expect(signIn.headers.get('location')).toBe('/');
    const cookie = signIn.headers.get('set-cookie')!;
    expect(cookie).toMatch(/^kiln_token=dashboard-test-token; HttpOnly; SameSite=Strict; Path=\/$/);
    const overview = await fetch(`${url}api/overview`, { headers: { cookie: cookie.split(';')[0]! } });
    expect(overview.status).toBe(200);
    const body = (await overview.json()) as { workers: { name: string; up: boolean }[] };
    expect(body.workers.map((w) => [w.name, w.up])).toEqual([
      ['worker:0', true],
      ['worker:1', true],
    ]);
  });

  it('shows a job running with its loss curve, cancels it from the page, and shows it STOPPED', async (context) => {
    if (chromiumMissing) return context.skip(chromiumMissing);
    // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`${m.text()} (${m.location().url})`);
    });
    page.on('pageerror', (e) => problems.push(e.message));

    const url = coordinator!.dashboardUrl!;
    await page.goto(`${url}?token=${TOKEN}`);
    // Signed in, and the token is out of the address bar.
    expect(page.url()).toBe(url);
    await waitFor(page, () => page.getByTestId('connection').getAttribute('data-state'), 'live');
    await waitFor(page, () => page.getByTestId('worker-row').count(), 2);

    const job = await jobs!.submit(await regression());
    const row = page.locator(`[data-testid=job-row][data-job="${job.id}"]`);
    await waitFor(page, () => row.getByTestId('job-state').textContent(), 'RUNNING');
    await waitFor(
      page,
      async () => /^\d+\/1000000$/.test((await row.getByTestId('job-progress').textContent()) ?? ''),
      true,
    );

    // The worker it runs on says so.
    const [worker] = (await job.status()).workers;
    const holder = page
      .locator(`[data-testid=worker-row][data-worker="${worker}"]`)
      .getByTestId('worker-running');
    await waitFor(page, () => holder.textContent(), `#${job.id} long-regression`);

    await row.click();
    const detail = page.getByTestId('job-detail');
    await waitFor(page, () => detail.getByTestId('detail-state').textContent(), 'RUNNING');
    // The loss curve: data given to the chart, and its line drawn on the canvas.
    await waitFor(
      page,
      async () => Number(await page.getByTestId('loss-chart').getAttribute('data-points')) >= 5,
      true,
    );
    await waitFor(
      page,
      () => seriesPixels(page),
      (n: number) => n > 50,
    );
    expect(await detail.locator(`[data-testid=placement-worker][data-worker="${worker}"]`).count()).toBe(1);
    const span = detail.locator(
      `[data-testid=timeline-lane][data-worker="${worker}"] [data-testid=timeline-span][data-job="${job.id}"]`,
    );
    expect(await span.count()).toBe(1);
    await mkdir(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true });

    await detail.getByTestId('cancel-button').click();
    await waitFor(page, () => detail.getByTestId('detail-state').textContent(), 'STOPPED');
    await waitFor(page, () => row.getByTestId('job-state').textContent(), 'STOPPED');
    await waitFor(page, () => holder.textContent(), 'idle');
    expect(await detail.getByTestId('cancel-button').isHidden()).toBe(true);
    expect(await detail.getByTestId('job-log').textContent()).toMatch(/cancel requested/);
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-stopped.png'), fullPage: true });

    const status = await jobs!.job(job.id).status();
    expect(status.state).toBe('STOPPED');
    expect(status.reason).toMatch(/^cancelled after step \d+$/);
    // No script error and no request the page's policy blocked.
    expect(problems).toEqual([]);
  }, 120_000);
});

/**
 * Polls `read` until it gives `want` (or satisfies it), up to 30 s. On a timeout the error says
 * what the page last showed and carries the page's problem line, not only that nothing matched.
 */
async function waitFor<T>(
  page: Page,
  read: () => Promise<T>,
  want: T | ((value: T) => boolean),
): Promise<void> {
  const ok = (v: T) => (typeof want === 'function' ? (want as (value: T) => boolean)(v) : v === want);
  const deadline = Date.now() + 30_000;
  let last: T | undefined;
  for (;;) {
    last = await read();
    if (ok(last)) return;
    if (Date.now() > deadline) {
      const problem = await page
        .getByTestId('problem')
        .textContent()
        .catch(() => '');
      throw new Error(
        `the dashboard did not show ${typeof want === 'function' ? 'what was expected' : JSON.stringify(want)} in 30 s: it showed ${JSON.stringify(last)}${problem ? `; its problem line: ${problem}` : ''}; coordinator log: ${coordinatorLog.slice(-5).join(' | ')}`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** What is read of a canvas element (this package's tests compile without the DOM's types). */
interface PixelCanvas {
  readonly width: number;
  readonly height: number;
  getContext(
    kind: '2d',
  ): { getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } } | null;
}

/** How many pixels of the loss chart's canvas are the series' colour: the line is drawn. */
async function seriesPixels(page: Page): Promise<number> {
  const canvas = page.locator('[data-testid=loss-chart] canvas').first();
  if ((await canvas.count()) === 0) return 0;
  return canvas.evaluate((element, rgb) => {
    const canvas = element as unknown as PixelCanvas;
    const ctx = canvas.getContext('2d');
    if (!ctx) return 0;
    const { data } = ctx.getImageData(0, 0, canvas.width, canvas.height);
    let n = 0;
    for (let i = 0; i < data.length; i += 4)
      if (
        Math.abs(data[i]! - rgb[0]) < 40 &&
        Math.abs(data[i + 1]! - rgb[1]) < 40 &&
        Math.abs(data[i + 2]! - rgb[2]) < 40 &&
        data[i + 3]! > 128
      )
        n++;
    return n;
  }, SERIES_RGB);
}
