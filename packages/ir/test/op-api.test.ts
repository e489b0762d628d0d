import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { blockContent, blockIn, opApiBlocks, withBlock } from '../scripts/op-api.js';
import { OP_FUNCTIONS } from '../src/api/op-functions.js';
import { ELEMENTWISE_OPS } from '../src/ops/elementwise.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const onDisk = (file: string) => readFileSync(join(root, file), 'utf8');

describe('the API generated from the elementwise op definitions', () => {
  it('is up to date in every file (else: npm run generate -w packages/ir)', () => {
    for (const block of opApiBlocks(root)) {
      const text = onDisk(block.file);
      const { start, end } = blockIn(text, block);
      const current = text.split('\n').slice(start + 1, end);
      expect(
        blockContent(current),
        `${block.file}: ${block.name} (run npm run generate -w packages/ir)`,
      ).toEqual(blockContent(block.lines));
    }
  });

  it('covers every elementwise op: table, function, OP_FUNCTIONS entry', () => {
    const table = opApiBlocks(root).find((b) => b.name === 'elementwise table')!;
    expect(table.lines).toHaveLength(Object.keys(ELEMENTWISE_OPS).length);
    for (const name of Object.keys(ELEMENTWISE_OPS))
      expect(typeof OP_FUNCTIONS[name as 'tanh'], name).toBe('function');
  });

  it('notices a block left stale: an op missing from it', () => {
    const block = opApiBlocks(root).find((b) => b.file.endsWith('methods.ts'))!;
    const stale = withBlock(onDisk(block.file), { ...block, lines: block.lines.slice(3) });
    const { start, end } = blockIn(stale, block);
    expect(blockContent(stale.split('\n').slice(start + 1, end))).not.toEqual(blockContent(block.lines));
  });
});
