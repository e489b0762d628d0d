import { execFile } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { HostTensor, Session, saveGraphFile } from 'kiln-tensor';
import { exampleBatch } from './input.js';
import { buildModel } from './model.js';

const graph = buildModel();
console.log('The graph, one line per node:\n');
console.log(graph.toString());

const session = new Session(graph);
const { probabilities } = await session.run({ probabilities: 'probabilities' }, { features: exampleBatch() });
console.log('\nProbabilities in this process:');
console.log(probabilities.toString());
await session.close();

const dir = process.env.KILN_EXAMPLE_DIR ?? (await mkdtemp(join(tmpdir(), 'kiln-symbolic-')));
const file = join(dir, 'model.kiln');
const bytes = await saveGraphFile(file, graph);
console.log(`\nSaved the graph to ${file} (${bytes} bytes).`);

// A fresh Node process that imports only the runtime loads the file and runs it.
const script = fileURLToPath(new URL('./load-and-run.ts', import.meta.url));
const { stdout } = await promisify(execFile)(process.execPath, [
  '--conditions=@kiln/source',
  '--import',
  'tsx',
  script,
  file,
]);
const reloaded = new HostTensor(
  'float32',
  probabilities.shape,
  Float32Array.from(JSON.parse(stdout) as number[]),
);
console.log('\nProbabilities in a fresh process that loaded the file:');
console.log(reloaded.toString());

const same = probabilities.data.every((p, i) => p === reloaded.data[i]);
console.log(same ? '\nIdentical: the graph is portable.' : '\nMISMATCH between the two processes.');
if (!same) process.exit(1);
