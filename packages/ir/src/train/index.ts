export { type Accumulation, accumulateGradients } from './accumulate.js';
export { CHECKPOINT_FRAME, type Checkpoint, decodeCheckpoint, encodeCheckpoint } from './checkpoint.js';
export { fans, glorotUniform, heNormal, type InitOptions } from './initializers.js';
export {
  Adam,
  type AdamOptions,
  type Optimizer,
  SGD,
  type SgdOptions,
  trainableVariables,
} from './optimizers.js';
