import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { nodeOnlyGuard } from './node-only.js';

const PAGE_ENTRY = fileURLToPath(new URL('../page/main.ts', import.meta.url));

/**
 * Bundles the page's script for browsers. Workspace packages resolve to their TypeScript sources
 * through the `@kiln/source` condition, as in tests, so the page needs no prior `npm run build`.
 */
export async function bundlePage(outfile: string): Promise<{ bytes: number; inputs: string[] }> {
  const result = await build({
    entryPoints: [PAGE_ENTRY],
    outfile,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    conditions: ['@kiln/source'],
    sourcemap: true,
    metafile: true,
    minify: true,
    logLevel: 'silent',
    plugins: [nodeOnlyGuard],
  });
  const output = Object.entries(result.metafile.outputs).find(([path]) => path.endsWith('.js'));
  return { bytes: output?.[1].bytes ?? 0, inputs: Object.keys(result.metafile.inputs) };
}
