import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { KilnError } from '@kiln/ir';

/** A file the dashboard serves as is. */
export interface Asset {
  readonly type: string;
  readonly body: Buffer;
}

/**
 * The page's own files are plain HTML, CSS and browser JavaScript in `src/dashboard/page/`, not
 * strings in a TS module: they stay readable and linted as what they are. The build copies no
 * assets, and the package ships `src`, so they are read from there, relative to this module, which
 * lands on the same folder from `src/dashboard/` and from `dist/dashboard/` alike.
 */
const PAGE_DIR = new URL('../../src/dashboard/page/', import.meta.url);

/**
 * uPlot draws the loss curve: about 50 kB, MIT, kept up, fast with thousands of points, and it has
 * a plain browser build (an IIFE that defines `uPlot`), so the page needs no bundler. It is served
 * from this package's own dependency, never a CDN: the dashboard works where the coordinator runs,
 * however cut off from the internet that is.
 */
const requireHere = createRequire(import.meta.url);

/** Path on the dashboard -> the file served there, all read at first use and kept in memory. */
export const ASSET_PATHS: Readonly<Record<string, { readonly file: () => string; readonly type: string }>> = {
  '/': { file: () => fileURLToPath(new URL('index.html', PAGE_DIR)), type: 'text/html; charset=utf-8' },
  '/app.js': {
    file: () => fileURLToPath(new URL('app.js', PAGE_DIR)),
    type: 'text/javascript; charset=utf-8',
  },
  '/app.css': { file: () => fileURLToPath(new URL('app.css', PAGE_DIR)), type: 'text/css; charset=utf-8' },
  // Given, so the browser does not ask for /favicon.ico and log a 404.
  '/favicon.svg': { file: () => fileURLToPath(new URL('favicon.svg', PAGE_DIR)), type: 'image/svg+xml' },
  '/vendor/uplot.js': {
    file: () => requireHere.resolve('uplot/dist/uPlot.iife.min.js'),
    type: 'text/javascript; charset=utf-8',
  },
  '/vendor/uplot.css': {
    file: () => requireHere.resolve('uplot/dist/uPlot.min.css'),
    type: 'text/css; charset=utf-8',
  },
};

let loaded: ReadonlyMap<string, Asset> | undefined;

/**
 * Every asset, read once: a missing file fails the dashboard when it is created, naming the file,
 * not the first browser that asks for it.
 */
export function assets(): ReadonlyMap<string, Asset> {
  loaded ??= new Map(
    Object.entries(ASSET_PATHS).map(([path, { file, type }]) => {
      let where = path;
      try {
        where = file();
        return [path, { type, body: readFileSync(where) }];
      } catch (e) {
        throw new KilnError('runtime', `the dashboard cannot read ${where}: ${(e as Error).message}`, {
          cause: e,
        });
      }
    }),
  );
  return loaded;
}
