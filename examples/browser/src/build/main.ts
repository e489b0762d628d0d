/** `npm run build -w examples/browser`: writes the page into examples/browser/dist. */
import { fileURLToPath } from 'node:url';
import { buildPage } from './build.js';

const built = await buildPage(fileURLToPath(new URL('../../dist/', import.meta.url)));
console.log(
  `built ${built.dir}: app.js ${(built.scriptBytes / 1024).toFixed(0)} KiB, ` +
    `digits ${(built.digitsBytes / 1024 / 1024).toFixed(1)} MiB`,
);
