/**
 * Mutation fuzzing for kiln's decoders of untrusted bytes (graph and checkpoint files, wire
 * frames), shared by every package's tests: seeded mutators that damage bytes, forge lengths,
 * confuse types in the decoded msgpack tree, nest values deeply and repair the frame header so the
 * damage gets past the checksum; and a campaign runner that times each case and names the seed of
 * every failure. Test support only: nothing in kiln's runtime imports it.
 */
export {
  appendTrailing,
  type ByteMutation,
  deleteBytes,
  flipBits,
  insertBytes,
  setBytes,
  splice,
  truncate,
} from './byte-mutations.js';
export {
  type Attempt,
  attempt,
  type CampaignOptions,
  type CampaignReport,
  type CaseVerdict,
  caseSeed,
  describeAttempt,
  describeError,
  formatCampaign,
  fuzzSettings,
  hexSeed,
  runCampaign,
  runCampaignAsync,
} from './campaign.js';
export { anyValue, confusingValue, type MsgpackType, msgpackTypeOf } from './confusing-values.js';
export { nestDeeply } from './deep-nesting.js';
export { stackDependence, underDeepStack } from './deep-stack.js';
export { forgeHeader, framePayload, reframe, repairFrame } from './frame-header.js';
export { forgeLength } from './length-forgery.js';
export { type MsgpackItem, type MsgpackKind, msgpackItems } from './msgpack-layout.js';
export { type FuzzTarget, type Mutant, type MutationFamily, mutant } from './mutant.js';
export { packTree } from './tree-bytes.js';
export {
  confuseType,
  describeValue,
  editArray,
  editKeys,
  graft,
  negateZeros,
  nudgeNumber,
  resizeBytes,
  type Slot,
  type TreeMutation,
  type TreeVocabulary,
  treeSlots,
} from './tree-mutations.js';
