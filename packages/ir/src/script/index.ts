export { MAX_UNROLL } from './loops.js';
export { type OriginalSource, type SourceLocator, setSourceLocator } from './original-source.js';
export {
  isParsedScript,
  ParsedScript,
  parseScript,
  type ScriptableFunction,
  type ScriptCapture,
  type ScriptCaptureInput,
  type ScriptedGraph,
  type ScriptOptions,
  type ScriptTensorCapture,
  scriptToGraph,
} from './script.js';
export { ScriptError } from './source.js';
