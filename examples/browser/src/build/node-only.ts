import type { Plugin } from 'esbuild';

/**
 * `kiln`'s index also exports its file helpers (saveCheckpointFile, loadGraphFile, ...), which import
 * node:fs/promises. The page never calls them, but a bundler for the browser still has to resolve
 * the import. This plugin resolves exactly that import, from exactly those files, to a module whose
 * functions throw if ever called; any other Node built-in anywhere in the bundle fails the build, so
 * Node-only code cannot slip into the page unnoticed. (A `browser` condition in kiln's exports map
 * that leaves the file helpers out would make this unnecessary.)
 */
const ALLOWED = /[\\/]packages[\\/]kiln[\\/]src[\\/](checkpoint|graph)-file\.ts$/;

export const nodeOnlyGuard: Plugin = {
  name: 'kiln-node-only-guard',
  setup(build) {
    build.onResolve(
      { filter: /^node:|^(fs|path|module|os|worker_threads|child_process|webgpu)$/ },
      (args) => {
        if (args.path === 'node:fs/promises' && ALLOWED.test(args.importer)) {
          return { path: args.path, namespace: 'node-only' };
        }
        return {
          errors: [
            {
              text: `${args.path} is Node-only and must not be bundled into the page (imported by ${args.importer})`,
            },
          ],
        };
      },
    );
    build.onLoad({ filter: /.*/, namespace: 'node-only' }, (args) => ({
      // CommonJS, so any named import resolves to a function that explains itself when called.
      contents: `module.exports = new Proxy({}, { get: (_, name) => () => {
        throw new Error(${JSON.stringify(args.path)} + '.' + String(name) + ' is not available in the browser');
      } });`,
      loader: 'js',
    }));
  },
};
