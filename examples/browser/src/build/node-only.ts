import type { Plugin } from 'esbuild';

/**
 * Some public modules hold Node-only parts the page never reaches: `kiln`'s file helpers
 * (saveCheckpointFile, loadGraphFile, ...) import node:fs/promises, and the scheduler's
 * worker-thread executor imports node:worker_threads, and its network layer node:http(s), node:crypto
 * and node:fs. A bundler for the browser still has to
 * resolve those imports, so this plugin resolves exactly these, from exactly those files, to a
 * module whose functions throw if ever called. Any other Node built-in anywhere in the bundle
 * fails the build, so new Node-only code cannot slip into the page unnoticed. (A `browser`
 * condition in those packages' exports maps that leaves these parts out would make this
 * unnecessary.)
 */
const ALLOWED: readonly { readonly module: string; readonly importer: RegExp }[] = [
  { module: 'node:fs/promises', importer: /[\\/]packages[\\/]kiln[\\/]src[\\/](checkpoint|graph)-file\.ts$/ },
  {
    module: 'node:worker_threads',
    importer: /[\\/]packages[\\/]scheduler[\\/]src[\\/]cluster[\\/][\w-]+\.ts$/,
  },
  // The remote cluster's sockets: a page never listens, nor dials with a token header.
  ...['node:http', 'node:https', 'node:crypto', 'node:fs'].map((module) => ({
    module,
    importer: /[\\/]packages[\\/]scheduler[\\/]src[\\/]net[\\/][\w-]+\.ts$/,
  })),
];

export const nodeOnlyGuard: Plugin = {
  name: 'kiln-node-only-guard',
  setup(build) {
    build.onResolve(
      { filter: /^node:|^(fs|path|module|os|worker_threads|child_process|webgpu)$/ },
      (args) => {
        if (ALLOWED.some((a) => a.module === args.path && a.importer.test(args.importer))) {
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
