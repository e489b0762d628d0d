export { broadcastLike, restoreReducedDims } from './expand.js';
export { gradients, inlineRegion, MAX_UNROLLED_ITERATIONS } from './gradients.js';
export { toReshapeTarget, unbroadcast } from './unbroadcast.js';
