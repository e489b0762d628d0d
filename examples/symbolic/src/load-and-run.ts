/**
 * Runs a saved graph. It imports only the runtime: nothing here knows how the model was built,
 * which is the point — a serialized graph is data that any kiln process can run.
 */
import { loadGraphFile, Session } from 'kiln-tensor';
import { exampleBatch } from './input.js';

export async function loadAndRun(path: string): Promise<number[]> {
  const graph = await loadGraphFile(path);
  const session = new Session(graph);
  const probabilities = await session.run('probabilities', { features: exampleBatch() });
  await session.close();
  return Array.from(probabilities.data);
}

// Run as a script: print the probabilities as JSON on stdout for the parent process.
if (process.argv[1]?.endsWith('load-and-run.ts')) {
  const path = process.argv[2];
  if (!path) {
    console.error('usage: load-and-run.ts <graph file>');
    process.exit(2);
  }
  console.log(JSON.stringify(await loadAndRun(path)));
}
