import { readFile, rename, writeFile } from 'node:fs/promises';
import { type Checkpoint, decodeCheckpoint, encodeCheckpoint, KilnError } from '@kiln/ir';

/** Writes a checkpoint atomically (temporary file, then rename): a crash never leaves half of one. */
export async function saveCheckpointFile(path: string, checkpoint: Checkpoint): Promise<number> {
  const bytes = encodeCheckpoint(checkpoint);
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, bytes);
  await rename(tmp, path);
  return bytes.byteLength;
}

/** Reads and checks a checkpoint file; a bad one is a KilnError naming the path. */
export async function loadCheckpointFile(path: string): Promise<Checkpoint> {
  const bytes = await readFile(path);
  try {
    return decodeCheckpoint(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (e) {
    if (e instanceof KilnError) throw new KilnError(e.code, `${path}: ${e.message}`, { cause: e });
    throw e;
  }
}
