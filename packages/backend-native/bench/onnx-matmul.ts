/**
 * The smallest ONNX model that multiplies two n x n float32 matrices (one MatMul node, A and B in,
 * C out), written as protobuf bytes here: onnxruntime-node takes a model as bytes, and kiln has no
 * reason to depend on an ONNX library for one node. Field numbers are those of onnx.proto
 * (ModelProto, GraphProto, NodeProto, ValueInfoProto, TypeProto, TensorShapeProto).
 */

/** A protobuf varint. Every number here is small and non-negative. */
function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
}

const VARINT = 0;
const BYTES = 2;
const key = (field: number, wire: number) => varint((field << 3) | wire);
const int = (field: number, n: number) => [...key(field, VARINT), ...varint(n)];
const bytes = (field: number, body: readonly number[]) => [
  ...key(field, BYTES),
  ...varint(body.length),
  ...body,
];
const text = (field: number, s: string) => bytes(field, [...new TextEncoder().encode(s)]);

const FLOAT = 1;

/** ValueInfoProto: a float32 tensor of this shape. */
function floatTensor(name: string, shape: readonly number[]): number[] {
  const dims = shape.flatMap((d) => bytes(1, int(1, d)));
  const tensorType = [...int(1, FLOAT), ...bytes(2, dims)];
  return [...text(1, name), ...bytes(2, bytes(1, tensorType))];
}

/** C = A x B for n x n float32 matrices, as an ONNX model (IR version 8, opset 17). */
export function matmulModel(n: number): Uint8Array {
  const node = [
    ...text(1, 'A'),
    ...text(1, 'B'),
    ...text(2, 'C'),
    ...text(3, 'matmul'),
    ...text(4, 'MatMul'),
  ];
  const graph = [
    ...bytes(1, node),
    ...text(2, 'sgemm'),
    ...bytes(11, floatTensor('A', [n, n])),
    ...bytes(11, floatTensor('B', [n, n])),
    ...bytes(12, floatTensor('C', [n, n])),
  ];
  const opset = [...text(1, ''), ...int(2, 17)];
  return Uint8Array.from([...int(1, 8), ...text(2, 'kiln bench'), ...bytes(7, graph), ...bytes(8, opset)]);
}
