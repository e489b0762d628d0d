import { readFile, rename, writeFile } from 'node:fs/promises';
import { deserializeGraph, type GraphData, KilnError, serializeGraph } from '@kiln/ir';

/**
 * Writes a graph to a file: to a temporary name first, then renamed, so a crash mid-write never
 * leaves a truncated graph where a good one was.
 */
export async function saveGraphFile(path: string, graph: GraphData): Promise<number> {
  const bytes = serializeGraph(graph);
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, bytes);
  await rename(tmp, path);
  return bytes.byteLength;
}

/** Reads and verifies a graph file; a bad file is a KilnError that names the path. */
export async function loadGraphFile(path: string): Promise<GraphData> {
  const bytes = await readFile(path);
  try {
    return deserializeGraph(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (e) {
    if (e instanceof KilnError) throw new KilnError(e.code, `${path}: ${e.message}`, { cause: e });
    throw e;
  }
}
