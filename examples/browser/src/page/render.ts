import { type DigitSplit, PIXELS } from '../digits-format.js';
import type { PageResult, PageState } from '../page-result.js';

const SHOWN = 24;

const byId = (id: string): HTMLElement => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`index.html has no #${id}`);
  return el;
};

export function setState(state: PageState, text: string): void {
  document.body.dataset.state = state;
  byId('status').textContent = text;
}

export function showDevice(text: string): void {
  byId('device').textContent = text;
}

/** The result in words, a grid of held-out digits with their predictions, and the JSON for tests. */
export function showResult(result: PageResult, test: DigitSplit): void {
  byId('accuracy').textContent =
    `${(result.accuracy * 100).toFixed(2)}% of ${result.testCount} held-out digits correct after ` +
    `${result.steps} training steps of ${result.batchSize} (${result.trainSeconds.toFixed(1)} s, ` +
    `loss ${result.firstLoss.toFixed(3)} → ${result.lastLoss.toFixed(3)})`;
  const grid = byId('digits');
  grid.replaceChildren();
  for (let i = 0; i < Math.min(SHOWN, test.count); i++) {
    const predicted = result.predictions[i]!;
    const label = test.labels[i]!;
    const figure = document.createElement('figure');
    figure.className = predicted === label ? 'right' : 'wrong';
    figure.dataset.predicted = String(predicted);
    figure.dataset.label = String(label);
    figure.append(digitCanvas(test.images.subarray(i * PIXELS, (i + 1) * PIXELS)));
    const caption = document.createElement('figcaption');
    caption.textContent = `predicted ${predicted}, is ${label}`;
    figure.append(caption);
    grid.append(figure);
  }
  byId('result-json').textContent = JSON.stringify(result);
}

function digitCanvas(pixels: Uint8Array): HTMLCanvasElement {
  const canvas = document.createElement('canvas');
  canvas.width = 28;
  canvas.height = 28;
  const context = canvas.getContext('2d');
  if (context) {
    const image = context.createImageData(28, 28);
    pixels.forEach((v, p) => {
      image.data.set([255 - v, 255 - v, 255 - v, 255], p * 4);
    });
    context.putImageData(image, 0, 0);
  }
  return canvas;
}
