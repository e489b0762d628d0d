import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadMnist } from '../../../mnist/src/data.js';
import { DIGITS_FILE, MANIFEST_FILE } from '../digits-format.js';
import { bundlePage } from './bundle.js';
import { packDigits } from './digits.js';

const HTML = fileURLToPath(new URL('../page/index.html', import.meta.url));

export interface BuiltPage {
  readonly dir: string;
  readonly scriptBytes: number;
  readonly digitsBytes: number;
}

/**
 * Writes the page into `dir`: index.html, the bundled script, and the digits as a binary asset.
 * The digits are read here, in Node, so the page itself never touches the file system.
 */
export async function buildPage(dir: string): Promise<BuiltPage> {
  await mkdir(dir, { recursive: true });
  const { train, test } = loadMnist();
  const { manifest, bytes } = packDigits(train, test);
  const [bundle] = await Promise.all([
    bundlePage(join(dir, 'app.js')),
    writeFile(join(dir, DIGITS_FILE), bytes),
    writeFile(join(dir, MANIFEST_FILE), `${JSON.stringify(manifest)}\n`),
    copyFile(HTML, join(dir, 'index.html')),
  ]);
  return { dir, scriptBytes: bundle.bytes, digitsBytes: bytes.byteLength };
}
