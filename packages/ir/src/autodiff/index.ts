export { gradients, inlineRegion, MAX_UNROLLED_ITERATIONS } from './gradients.js';
