export { crc32 } from './crc32.js';
export { GRAPH_FORMAT_VERSION, GRAPH_HEADER_BYTES, GRAPH_MAGIC } from './frame.js';
export { deserializeGraph, serializeGraph } from './graph-bytes.js';
export { decodeMsgpack } from './msgpack.js';
