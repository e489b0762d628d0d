import { HostTensor } from 'kiln-tensor';

/** A fixed batch of three feature rows, the same in every process. */
export const exampleBatch = (): HostTensor =>
  HostTensor.from([
    [0.5, -1.2, 3.3, 0.0],
    [1.0, 2.0, -0.5, 0.25],
    [-2.0, 0.1, 0.7, -1.5],
  ]);
