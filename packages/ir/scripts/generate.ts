/**
 * `npm run generate -w packages/ir`: rewrites the generated blocks of kiln's API from the op
 * definitions (see op-api.ts), then formats the files it touched.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { opApiBlocks, withBlock } from './op-api.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const touched = new Set<string>();
for (const block of opApiBlocks(root)) {
  const path = join(root, block.file);
  const before = readFileSync(path, 'utf8');
  const after = withBlock(before, block);
  if (after !== before) {
    writeFileSync(path, after);
    touched.add(block.file);
  }
}
if (touched.size > 0)
  execFileSync('npx', ['biome', 'check', '--write', ...touched], { cwd: root, stdio: 'inherit' });
console.log(touched.size ? `generated: ${[...touched].join(', ')}` : 'generated blocks are up to date');
