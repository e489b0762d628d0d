export * from './abi/buffer-pool.js';
export * from './abi/check.js';
export * from './abi/device.js';
export * from './abi/host-concat.js';
export * from './abi/host-device.js';
export * from './abi/host-executable.js';
export * from './abi/host-kernel.js';
export * from './abi/host-memory.js';
export * from './abi/reference-kernels.js';
export * from './api/default-context.js';
export * from './api/handle.js';
export { TensorMethods } from './api/methods.js';
export * from './api/nn.js';
export { OP_FUNCTIONS } from './api/op-functions.js';
export * from './api/ops.js';
export { atLocation, userLocation } from './api/source-location.js';
export { type Attr, type AttrSchema, type AttrsOf, attr, type TensorValue } from './attrs.js';
export * from './autodiff/index.js';
export * from './dtype.js';
export * from './errors.js';
export * from './graph/builder.js';
export * from './graph/control-builder.js';
export * from './graph/graph.js';
export * from './graph/interpret.js';
export { opSubgraph } from './graph/op-subgraph.js';
export * from './graph/print.js';
export * from './graph/prune.js';
export * from './graph/region.js';
export * from './graph/subgraph.js';
export * from './graph/verify.js';
export * from './host-tensor.js';
export {
  COMPOSITE_OP_NAMES,
  type CompositeOpName,
  EXECUTOR_OP_NAMES,
  EXECUTOR_OPS,
  type ExecutorOpName,
  isComposite,
  isOpName,
  OP_NAMES,
  OPS,
  type OpAttrs,
  type OpName,
  opDef,
  PRIMITIVE_OP_NAMES,
  type PrimitiveOpName,
} from './ops/index.js';
export type {
  AnyOpDef,
  CompositeOpDef,
  ConcreteType,
  ConformanceCase,
  Cost,
  DecomposeArgs,
  DecomposeRule,
  GradientRule,
  NotDifferentiable,
  OpDef,
  OpKind,
  PrimitiveOpDef,
  ValueDomain,
  VjpArgs,
  VjpRule,
} from './ops/op-def.js';
export { bitsToUnit, threefry2x32 } from './ops/threefry.js';
export * from './parallel/index.js';
export * from './passes/index.js';
export { Prng } from './prng.js';
export * from './ref-tensor.js';
export * from './script/index.js';
export * from './serialize/index.js';
export * from './shape.js';
export * from './train/index.js';
export type { GradientPair } from './train/optimizers.js';
