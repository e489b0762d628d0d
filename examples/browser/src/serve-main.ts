/**
 * `npm start -w examples/browser`: builds the page into dist/ and serves it on 127.0.0.1 until
 * interrupted. PORT picks the port (default 8080; 0 for any free one).
 */
import { fileURLToPath } from 'node:url';
import { buildPage } from './build/build.js';
import { servePage } from './serve.js';

const built = await buildPage(fileURLToPath(new URL('../dist/', import.meta.url)));
console.log(
  `built ${built.dir} (app.js ${(built.scriptBytes / 1024).toFixed(0)} KiB, digits ${(built.digitsBytes / 2 ** 20).toFixed(1)} MiB)`,
);
const port = Number(process.env.PORT ?? 8080);
const server = await servePage(built.dir, port).catch((error: NodeJS.ErrnoException) => {
  if (error.code !== 'EADDRINUSE') throw error;
  console.error(`port ${port} is in use: PORT=0 npm start -w examples/browser picks a free one`);
  process.exit(1);
});
console.log(`serving the kiln MNIST page at ${server.url}  (Ctrl-C to stop)`);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void server.close().then(() => process.exit(0));
  });
}
