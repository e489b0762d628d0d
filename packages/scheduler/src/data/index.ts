/** Datasets for training jobs: safetensors files, sharded datasets over them, epoch orders. */
export {
  batchRows,
  Dataset,
  type DatasetTensor,
  epochOrder,
  MAX_DATASET_ROWS,
  mixSeed,
  stepsPerEpoch,
} from './dataset.js';
export {
  MAX_HEADER_BYTES,
  openSafetensors,
  type ReadStats,
  type SafetensorsEntry,
  SafetensorsFile,
  writeSafetensors,
} from './safetensors.js';
