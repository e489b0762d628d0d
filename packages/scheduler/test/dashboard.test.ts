import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ThreadPool } from '../src/cluster/thread-pool.js';
import { cookie } from '../src/dashboard/access.js';
import { type DashboardHandler, dashboardHandler } from '../src/dashboard/handler.js';
import type { Change } from '../src/dashboard/live-feed.js';
import { placesOn } from '../src/dashboard/placement.js';
import { workerTimeline } from '../src/dashboard/timeline.js';
import type { JobDetail, Overview } from '../src/dashboard/views.js';
import { thin } from '../src/dashboard/views.js';
import { setDefaultWorkerDevice } from '../src/index.js';
import { type JobInfo, JobService, openJobs, SqliteJobStore } from '../src/jobs/index.js';
import { stderrLog } from '../src/net/log.js';
import { listen } from '../src/net/server.js';
import { regressionData, tempDir, trainSpec } from './jobs/fixtures.js';

/**
 * The dashboard's handler on a plain HTTP server, asked with fetch: who gets in (token, cookie,
 * sign-in redirect), what is served and with which headers, how bad requests are answered, what
 * the API says about a job that ran, and that the live stream tells of a new job. The browser
 * end to end is packages/kiln/test/dashboard.test.ts.
 */
setDefaultWorkerDevice({ module: '@kiln/backend-cpu' });

const TOKEN = 'dash-secret';

async function serve(handler: DashboardHandler): Promise<{ url: string; server: Server }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

function stop(server: Server | undefined): Promise<void> {
  if (!server) return Promise.resolve();
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

describe('the dashboard handler', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  let train: string;
  let store: SqliteJobStore;
  let pool: ThreadPool;
  let service: JobService;
  let guarded: DashboardHandler;
  let open: DashboardHandler;
  let servers: Server[] = [];
  let url: string;
  let openUrl: string;
  const bearer = { authorization: `Bearer ${TOKEN}` };

  beforeAll(async () => {
    tmp = await tempDir();
    train = await regressionData(tmp.dir, 'train.safetensors', 256, 1);
    store = new SqliteJobStore(':memory:');
    pool = await ThreadPool.create({ workers: 2 });
    service = await JobService.start(store, pool);
    guarded = dashboardHandler(service, pool, { token: TOKEN });
    open = dashboardHandler(service, pool);
    const a = await serve(guarded);
    const b = await serve(open);
    servers = [a.server, b.server];
    url = a.url;
    openUrl = b.url;
  });
  afterAll(async () => {
    guarded?.close();
    open?.close();
    for (const s of servers) await stop(s);
    await service?.close();
    await pool?.close();
    store?.close();
    await tmp?.remove();
  });

  it('refuses every request without the right token, with a one-line 401', async () => {
    for (const path of ['/', '/app.js', '/api/overview', '/api/live', '/nowhere']) {
      const res = await fetch(url + path);
      expect(res.status, path).toBe(401);
      expect(await res.text()).toMatch(/^kiln: this dashboard needs its token: .*\n$/);
      expect(res.headers.get('content-security-policy')).toContain("default-src 'self'");
    }
    const wrongBearer = await fetch(`${url}/api/overview`, { headers: { authorization: 'Bearer nope' } });
    expect(wrongBearer.status).toBe(401);
    const wrongCookie = await fetch(`${url}/api/overview`, { headers: { cookie: 'kiln_token=nope' } });
    expect(wrongCookie.status).toBe(401);
    const wrongSignIn = await fetch(`${url}/?token=nope`, { redirect: 'manual' });
    expect(wrongSignIn.status).toBe(401);
    expect(wrongSignIn.headers.get('set-cookie')).toBeNull();
  });

  it('turns /?token= into an HttpOnly, SameSite=Strict cookie and sends the browser back to /', async () => {
    const res = await fetch(`${url}/?token=${TOKEN}`, { redirect: 'manual' });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/');
    const set = res.headers.get('set-cookie')!;
    expect(set).toBe(`kiln_token=${TOKEN}; HttpOnly; SameSite=Strict; Path=/`);
    const page = await fetch(`${url}/`, { headers: { cookie: set.split(';')[0]! } });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    expect(page.headers.get('content-security-policy')).toMatch(/^default-src 'self'/);
    const html = await page.text();
    expect(html).toContain('<script src="/app.js" type="module"></script>');
    // No inline script anywhere: the policy would block it.
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
  });

  it('serves the script, the styles and the chart library from here', async () => {
    for (const [path, type, text] of [
      ['/app.js', 'text/javascript; charset=utf-8', 'new EventSource'],
      ['/app.css', 'text/css; charset=utf-8', '.timeline-span'],
      ['/vendor/uplot.js', 'text/javascript; charset=utf-8', 'uPlot'],
      ['/vendor/uplot.css', 'text/css; charset=utf-8', '.uplot'],
    ] as const) {
      const res = await fetch(url + path, { headers: bearer });
      expect(res.status, path).toBe(200);
      expect(res.headers.get('content-type')).toBe(type);
      expect(await res.text()).toContain(text);
    }
  });

  it('answers only GET and POST, 404 for unknown paths and jobs, and reads no bodies', async () => {
    const put = await fetch(`${url}/`, { method: 'PUT', headers: bearer });
    expect(put.status).toBe(405);
    expect(put.headers.get('allow')).toBe('GET, POST');
    expect((await fetch(`${url}/api/overview`, { method: 'DELETE', headers: bearer })).status).toBe(405);
    const post = await fetch(`${url}/api/overview`, { method: 'POST', headers: bearer });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET');
    expect((await fetch(`${url}/api/jobs/1/cancel`, { headers: bearer })).status).toBe(405);
    expect((await fetch(`${url}/index.html`, { headers: bearer })).status).toBe(404);
    expect((await fetch(`${url}//elsewhere/api/overview`, { headers: bearer })).status).toBe(404);
    const none = await fetch(`${url}/api/jobs/999`, { headers: bearer });
    expect(none.status).toBe(404);
    expect(await none.json()).toEqual({ error: "no job '999'" });
    expect((await fetch(`${url}/api/jobs/a%2Fb`, { headers: bearer })).status).toBe(404);
    expect((await fetch(`${url}/api/jobs/999/cancel`, { method: 'POST', headers: bearer })).status).toBe(404);
    const body = await fetch(`${url}/api/jobs/1/cancel`, {
      method: 'POST',
      headers: bearer,
      body: 'x'.repeat(1000),
    });
    expect(body.status).toBe(413);
  });

  it('is open without a token (for loopback), and still refuses what it does not serve', async () => {
    const res = await fetch(`${openUrl}/api/overview`);
    expect(res.status).toBe(200);
    expect((await fetch(`${openUrl}/api/nothing`)).status).toBe(404);
    expect((await fetch(`${openUrl}/`, { method: 'PATCH' })).status).toBe(405);
  });

  it('shows the workers, a job that ran, its loss curve, placement and timeline; the stream tells of it', async () => {
    const before = (await (await fetch(`${url}/api/overview`, { headers: bearer })).json()) as Overview;
    expect(before.workers).toEqual([
      expect.objectContaining({ name: 'worker:0', device: 'cpu', up: true, generation: 1, running: null }),
      expect.objectContaining({ name: 'worker:1', device: 'cpu', up: true, generation: 1, running: null }),
    ]);
    const changes: Change[] = [];
    const live = new AbortController();
    const stream = await fetch(`${url}/api/live`, { headers: bearer, signal: live.signal });
    expect(stream.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    const reading = (async () => {
      const decoder = new TextDecoder();
      let buffered = '';
      try {
        for await (const chunk of stream.body!) {
          buffered += decoder.decode(chunk as Uint8Array, { stream: true });
          for (let at = buffered.indexOf('\n\n'); at >= 0; at = buffered.indexOf('\n\n')) {
            const message = buffered.slice(0, at);
            buffered = buffered.slice(at + 2);
            if (message.startsWith('data: ')) changes.push(JSON.parse(message.slice(6)) as Change);
          }
        }
      } catch {
        // Aborted at the end of the test.
      }
    })();
    // Let the event stream open before submitting.
    await new Promise((r) => setTimeout(r, 300));
    const info = service.submit(trainSpec(train, { name: 'dash-quick' }));
    await new Promise<void>((resolve) => {
      const off = service.follow(info.id, (e) => {
        if (e.type === 'state' && e.state === 'SUCCEEDED') {
          off();
          resolve();
        }
      });
    });
    // The stream told of it as it happened: its submission, then its end.
    await expect
      .poll(() => changes.some((c) => c.job === info.id && c.type === 'submitted'), { timeout: 5_000 })
      .toBe(true);
    await expect
      .poll(() => changes.some((c) => c.job === info.id && c.state === 'SUCCEEDED'), { timeout: 5_000 })
      .toBe(true);
    live.abort();
    await reading;

    const detail = (await (
      await fetch(`${url}/api/jobs/${info.id}`, { headers: bearer })
    ).json()) as JobDetail;
    expect(detail.job).toMatchObject({
      id: info.id,
      name: 'dash-quick',
      state: 'SUCCEEDED',
      workers: ['worker:0'],
    });
    expect(detail.loss.length).toBe(32);
    expect(detail.loss[0]![0]).toBe(1);
    expect(detail.placement.workers).toEqual([
      expect.objectContaining({ worker: 'worker:0', device: 'cpu' }),
    ]);
    expect(detail.placement.story.length).toBeGreaterThan(0);
    expect(detail.placement.workers[0]!.decisions.some((d) => d.includes(`job${info.id}/`))).toBe(true);
    const lane = detail.timeline.lanes.find((l) => l.worker === 'worker:0')!;
    expect(lane.spans).toEqual([
      expect.objectContaining({
        job: info.id,
        state: 'SUCCEEDED',
        start: detail.job.startedAt,
        end: detail.job.endedAt,
      }),
    ]);
    expect(detail.timeline.lanes.find((l) => l.worker === 'worker:1')!.spans).toEqual([]);
    expect(detail.log.at(-1)).toMatchObject({ level: 'state', message: 'SUCCEEDED' });

    // A finished job's cancel changes nothing; a cross-site POST is refused.
    const cancel = await fetch(`${url}/api/jobs/${info.id}/cancel`, { method: 'POST', headers: bearer });
    expect(((await cancel.json()) as { state: string }).state).toBe('SUCCEEDED');
    const foreign = await fetch(`${url}/api/jobs/${info.id}/cancel`, {
      method: 'POST',
      headers: { ...bearer, origin: 'http://elsewhere.example' },
    });
    expect(foreign.status).toBe(403);
  });
});

describe('openJobs with a dashboard', () => {
  it('serves it on 127.0.0.1 and closes it with the jobs', async () => {
    const jobs = await openJobs({ cluster: { workers: 1 }, dashboard: true });
    try {
      expect(jobs.dashboardUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
      const overview = (await (await fetch(`${jobs.dashboardUrl}api/overview`)).json()) as Overview;
      expect(overview.workers.map((w) => w.name)).toEqual(['worker:0']);
    } finally {
      await jobs.close();
    }
    await expect(fetch(`${jobs.dashboardUrl}api/overview`)).rejects.toThrow();
  });

  it('refuses an address off loopback without a token', async () => {
    await expect(openJobs({ cluster: { workers: 1 }, dashboard: { host: '0.0.0.0' } })).rejects.toThrow(
      /refusing to serve the dashboard on 0\.0\.0\.0 without a token/,
    );
  });
});

describe('a port with a plain HTTP handler', () => {
  it('gives requests to it, survives one that throws, and still answers 426 without one', async () => {
    const lines: string[] = [];
    const served = await listen(
      {
        log: (line) => lines.push(line),
        onRequest: (req, res) => {
          if (req.url === '/throw') throw new Error('boom');
          res.end('hello');
        },
      },
      () => {},
    );
    const bare = await listen({ log: stderrLog }, () => {});
    try {
      const http = served.url.replace('ws', 'http');
      expect(await (await fetch(`${http}/`)).text()).toBe('hello');
      expect((await fetch(`${http}/throw`)).status).toBe(500);
      expect(lines).toContain('a plain HTTP request failed: boom');
      expect(await (await fetch(`${http}/`)).text()).toBe('hello');
      expect((await fetch(`${bare.url.replace('ws', 'http')}/`)).status).toBe(426);
    } finally {
      await served.close();
      await bare.close();
    }
  });
});

describe('the dashboard pieces', () => {
  it('thins a curve to at most max points, keeping the first and the last', () => {
    const points = Array.from({ length: 10_001 }, (_, i) => i);
    const thinned = thin(points, 1000);
    expect(thinned.length).toBeLessThanOrEqual(1000);
    expect(thinned[0]).toBe(0);
    expect(thinned.at(-1)).toBe(10_000);
    expect(thin([1, 2, 3], 1000)).toEqual([1, 2, 3]);
  });

  it('tells which worker a placement decision puts things on', () => {
    expect(placesOn('p3/worker:1#0 on worker:1: 12 nodes (hint worker:0)', 'worker:1')).toBe(true);
    expect(placesOn('p3/worker:1#0 on worker:1: 12 nodes (hint worker:0)', 'worker:0')).toBe(false);
    expect(placesOn("variable 'job1/w' lives on worker:10 (hint)", 'worker:1')).toBe(false);
    expect(placesOn("variable 'job1/w' lives on worker:1 (hint)", 'worker:1')).toBe(true);
  });

  it('lays jobs out per worker, one span per worker held, running ones open-ended', () => {
    const job = (id: string, workers: string[], startedAt?: number, endedAt?: number): JobInfo => ({
      id,
      name: `j${id}`,
      kind: 'train',
      state: endedAt ? 'SUCCEEDED' : startedAt ? 'RUNNING' : 'PENDING',
      device: 'cpu',
      workersNeeded: workers.length,
      workers,
      submittedAt: 0,
      ...(startedAt !== undefined ? { startedAt } : {}),
      ...(endedAt !== undefined ? { endedAt } : {}),
      interrupted: false,
      events: 1,
    });
    const t = workerTimeline(
      [job('1', ['w:0', 'w:1'], 10, 20), job('2', ['w:0'], 30), job('3', [])],
      ['w:0', 'w:1', 'w:2'],
      50,
    );
    expect(t.from).toBe(10);
    expect(t.to).toBe(50);
    expect(t.lanes.map((l) => [l.worker, l.spans.map((s) => [s.job, s.start, s.end])])).toEqual([
      [
        'w:0',
        [
          ['1', 10, 20],
          ['2', 30, null],
        ],
      ],
      ['w:1', [['1', 10, 20]]],
      ['w:2', []],
    ]);
  });

  it('reads one cookie out of a Cookie header', () => {
    expect(cookie('a=1; kiln_token=s%20t; b=2', 'kiln_token')).toBe('s t');
    expect(cookie('kiln_tokenx=1', 'kiln_token')).toBeUndefined();
    expect(cookie('kiln_token=%E0%A4%A', 'kiln_token')).toBeUndefined();
    expect(cookie(undefined, 'kiln_token')).toBeUndefined();
  });
});
