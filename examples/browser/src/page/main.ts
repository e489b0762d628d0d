/**
 * The page: fetch the digits the build wrote, pick WebGPU or the CPU, train the MNIST MLP for a
 * few steps, and show the device, the held-out accuracy and predictions for some test digits.
 * `?steps=N` changes the number of training steps; `?kernels=typescript` keeps the CPU device's
 * kernels in TypeScript instead of WebAssembly SIMD, to compare the two.
 */
import { DIGITS_FILE, type DigitsManifest, MANIFEST_FILE, readSplit } from '../digits-format.js';
import type { PageResult } from '../page-result.js';
import { type DeviceChoice, fallBackToCpu, pickDevice } from './pick-device.js';
import { setState, showDevice, showResult } from './render.js';
import { trainAndEvaluate } from './train.js';

const DEFAULT_STEPS = 200;
const BATCH = 64;

async function main(): Promise<void> {
  setState('loading', 'Loading digits…');
  const params = new URLSearchParams(location.search);
  const steps = Number(params.get('steps') ?? DEFAULT_STEPS);
  if (!Number.isInteger(steps) || steps < 1)
    throw new Error(`?steps must be a positive integer, not ${steps}`);
  const kernels = params.get('kernels');
  if (kernels !== null && kernels !== 'typescript')
    throw new Error(`?kernels can only be 'typescript' (the default is WebAssembly SIMD), not '${kernels}'`);
  const [manifest, bytes] = await Promise.all([
    fetchOk(MANIFEST_FILE).then((r) => r.json() as Promise<DigitsManifest>),
    fetchOk(DIGITS_FILE).then(async (r) => new Uint8Array(await r.arrayBuffer())),
  ]);
  const train = readSplit(bytes, manifest.train);
  const test = readSplit(bytes, manifest.test);

  const trainOn = (choice: DeviceChoice) => {
    showDevice(describe(choice));
    setState('training', `Training for ${steps} steps…`);
    return trainAndEvaluate(choice.device, train, test, {
      steps,
      batchSize: BATCH,
      onStep: async (step, loss) => {
        if (step % 10 !== 9) return;
        setState('training', `Training: step ${step + 1} of ${steps}, loss ${loss.toFixed(3)}`);
        // Let the browser paint between steps; the CPU device would otherwise never yield.
        await new Promise((resolve) => setTimeout(resolve, 0));
      },
      onEvaluate: () => setState('evaluating', `Predicting ${test.count} held-out digits…`),
    });
  };
  let choice = await pickDevice(kernels === 'typescript');
  let run: Awaited<ReturnType<typeof trainAndEvaluate>>;
  try {
    run = await trainOn(choice);
  } catch (error) {
    // A WebGPU device that cannot run the model (a missing kernel, a lost device) gives way to the
    // CPU, and the page says why; a CPU failure is an error.
    if (choice.kind !== 'webgpu') throw error;
    console.warn(error);
    await choice.device.dispose();
    choice = fallBackToCpu(choice, error);
    run = await trainOn(choice);
  }
  const result: PageResult = {
    device: choice.kind,
    deviceName: choice.device.name,
    gpu: choice.gpu,
    ...(choice.adapter ? { adapter: choice.adapter } : {}),
    ...(choice.fallbackReason ? { fallbackReason: choice.fallbackReason } : {}),
    ...(choice.cpuKernels ? { cpuKernels: choice.cpuKernels } : {}),
    steps,
    batchSize: BATCH,
    firstLoss: run.losses[0]!,
    lastLoss: run.losses.at(-1)!,
    trainSeconds: run.seconds,
    testCount: test.count,
    accuracy: run.accuracy,
    predictions: run.predictions,
  };
  showResult(result, test);
  setState('done', 'Done.');
}

function describe(choice: DeviceChoice): string {
  const adapter = choice.adapter
    ? `${choice.adapter.vendor || 'unknown vendor'} ${choice.adapter.architecture}`.trim()
    : '';
  if (choice.kind === 'webgpu') return `WebGPU (${choice.device.name}, adapter: ${adapter})`;
  const why =
    choice.gpu === 'absent'
      ? 'this browser has no navigator.gpu'
      : choice.gpu === 'no-adapter'
        ? 'navigator.gpu.requestAdapter() returned no adapter'
        : `an adapter exists (${adapter}) but ${choice.fallbackReason ?? 'WebGPU was not used'}`;
  const kernels =
    choice.cpuKernels === 'webassembly-simd' ? 'WebAssembly SIMD kernels' : 'TypeScript kernels';
  return `CPU (${choice.device.name}, ${kernels}): ${why}`;
}

async function fetchOk(path: string): Promise<Response> {
  const response = await fetch(path);
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response;
}

main().catch((error: unknown) => {
  const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  document.getElementById('error')!.textContent = message;
  setState('error', 'Failed.');
  console.error(error);
});
