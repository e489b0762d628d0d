import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PageServer, servePage } from '../src/serve.js';

/** A raw GET, so the path reaches the server exactly as written (fetch would normalize it). */
function get(url: string, path: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(url), { path, method: 'GET' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

describe('examples/browser server', () => {
  let root: string;
  let server: PageServer;

  beforeAll(async () => {
    // The served folder, and beside it a file the server must never hand out.
    root = await mkdtemp(join(tmpdir(), 'kiln-serve-'));
    const dir = join(root, 'site');
    await mkdir(dir);
    await writeFile(join(root, 'secret.txt'), 'not for the page');
    await writeFile(join(dir, 'index.html'), '<p>page</p>');
    await writeFile(join(dir, 'app.js'), 'export {};');
    server = await servePage(dir);
  });

  afterAll(async () => {
    await server.close();
    await rm(root, { recursive: true, force: true });
  });

  it('listens on 127.0.0.1 only, on an ephemeral port', () => {
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    expect(new URL(server.url).port).not.toBe('0');
  });

  it('serves index.html for / and files with their content type', async () => {
    expect(await get(server.url, '/')).toMatchObject({ status: 200, body: '<p>page</p>' });
    const js = await get(server.url, '/app.js');
    expect(js.status).toBe(200);
    expect(js.type).toMatch(/^text\/javascript/);
    expect((await get(server.url, '/missing.js')).status).toBe(404);
  });

  it('refuses paths that climb out of the folder', async () => {
    for (const path of ['/../secret.txt', '/%2e%2e/secret.txt', '/..%2fsecret.txt']) {
      const res = await get(server.url, path);
      expect(res.body).not.toContain('not for the page');
      expect([403, 404]).toContain(res.status);
    }
  });
});
