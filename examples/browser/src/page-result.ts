/**
 * What the page reports when it has finished, as JSON in `#result-json` (and in words on the page).
 * The end-to-end test reads this; the page writes it. One type for both.
 */
export interface PageResult {
  /** The device the model trained and ran on. */
  readonly device: 'webgpu' | 'cpu';
  readonly deviceName: string;
  /** What `navigator.gpu` offered: nothing, an object whose requestAdapter() gave null, or an adapter. */
  readonly gpu: 'absent' | 'no-adapter' | 'adapter';
  readonly adapter?: AdapterSummary;
  /** Why the page runs on the CPU although an adapter exists (visible fallback, never silent). */
  readonly fallbackReason?: string;
  /**
   * On the CPU: whether matmul ran on the WebAssembly SIMD kernels or on TypeScript ones (the
   * page's `?kernels=typescript`, or a browser without WebAssembly SIMD).
   */
  readonly cpuKernels?: 'webassembly-simd' | 'typescript';
  readonly steps: number;
  readonly batchSize: number;
  readonly firstLoss: number;
  readonly lastLoss: number;
  readonly trainSeconds: number;
  readonly testCount: number;
  readonly accuracy: number;
  /** The predicted class of every held-out digit, in the asset's order. */
  readonly predictions: number[];
}

export interface AdapterSummary {
  readonly vendor: string;
  readonly architecture: string;
  readonly description: string;
}

/** The page's state, on `<body data-state>`: the test waits for 'done' or 'error'. */
export type PageState = 'loading' | 'training' | 'evaluating' | 'done' | 'error';
