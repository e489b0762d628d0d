// The Node-API surface of the native kernels: each function checks what JavaScript handed it
// (typed arrays of the right kind and length) before touching memory, and throws a TypeError or
// RangeError naming the argument otherwise. Data is never copied: kernels read and write the
// typed arrays' own memory.
#include <napi.h>
#include <omp.h>

#include <cblas.h>

#include <oneapi/dnnl/dnnl.hpp>

#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kernel-thread.h"
#include "kernels.h"

namespace {

bool fail(const Napi::Env& env, const char* message) {
  Napi::RangeError::New(env, message).ThrowAsJavaScriptException();
  return false;
}

template <typename T>
bool typed(const Napi::Value& v, napi_typedarray_type type, T** data, size_t* length) {
  // One call for the kind, the length and the data (already at the view's offset): a small kernel
  // is mostly this, so it is not three.
  napi_typedarray_type actual;
  void* at;
  if (!v.IsTypedArray() ||
      napi_get_typedarray_info(v.Env(), v, &actual, length, &at, nullptr, nullptr) != napi_ok ||
      actual != type)
    return false;
  *data = static_cast<T*>(at);
  return true;
}

// Whether the call's optional last argument (at `at`) asks for the work off this thread.
bool off_thread(const Napi::CallbackInfo& info, size_t at) { return info.Length() > at && info[at].ToBoolean(); }

// Runs `work` now (a failure becomes a RangeError), or queues it on this JavaScript thread's
// kernel thread and returns its promise.
Napi::Value run_or_queue(const Napi::CallbackInfo& info, bool queue, std::function<void()> work) {
  if (queue) {
    Napi::Env env = info.Env();
    auto* kernels = env.GetInstanceData<kiln::KernelThread>();
    if (!kernels) {
      kernels = new kiln::KernelThread(env);
      env.SetInstanceData(kernels);  // deleted, and its thread joined, when this thread ends
    }
    return kernels->Queue(info, std::move(work));
  }
  try {
    work();
  } catch (const std::exception& e) {
    fail(info.Env(), e.what());
  }
  return info.Env().Undefined();
}

// The kinds of handle JavaScript holds for native objects: a handle is only ever taken for the
// kind it was made as (a convolution's handle passed where a program's is expected is refused).
constexpr napi_type_tag kConvTag = {0x6b696c6e2d636f6eULL, 0x7620000000000001ULL};
constexpr napi_type_tag kProgramTag = {0x6b696c6e2d70726fULL, 0x6720000000000002ULL};
constexpr napi_type_tag kMatMulTag = {0x6b696c6e2d6d6174ULL, 0x6d75000000000003ULL};

// sgemmBatched(transA, transB, m, n, k, a, b, c, aOffsets, bOffsets, cOffsets, offThread?)
Napi::Value SgemmBatched(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 11 && info.Length() != 12) return fail(env, "sgemmBatched: 11 arguments and offThread"), env.Undefined();
  const bool ta = info[0].ToBoolean(), tb = info[1].ToBoolean();
  const int64_t m = info[2].ToNumber().Int64Value(), n = info[3].ToNumber().Int64Value(),
                k = info[4].ToNumber().Int64Value();
  if (m < 0 || n < 0 || k < 0 || m > INT32_MAX || n > INT32_MAX || k > INT32_MAX)
    return fail(env, "sgemmBatched: m, n, k must be int32 >= 0"), env.Undefined();
  float *a, *b, *c;
  int32_t *ao, *bo, *co;
  size_t al, bl, cl, aol, bol, col;
  if (!typed(info[5], napi_float32_array, &a, &al) || !typed(info[6], napi_float32_array, &b, &bl) ||
      !typed(info[7], napi_float32_array, &c, &cl))
    return fail(env, "sgemmBatched: a, b and c must be Float32Arrays"), env.Undefined();
  if (!typed(info[8], napi_int32_array, &ao, &aol) || !typed(info[9], napi_int32_array, &bo, &bol) ||
      !typed(info[10], napi_int32_array, &co, &col) || aol != bol || bol != col)
    return fail(env, "sgemmBatched: offsets must be Int32Arrays of one length"), env.Undefined();
  // Every batch's block must lie inside its array.
  const size_t as = size_t(m) * size_t(k), bs = size_t(k) * size_t(n), cs = size_t(m) * size_t(n);
  for (size_t t = 0; t < aol; ++t) {
    if (ao[t] < 0 || bo[t] < 0 || co[t] < 0 || size_t(ao[t]) + as > al || size_t(bo[t]) + bs > bl ||
        size_t(co[t]) + cs > cl)
      return fail(env, "sgemmBatched: a batch lies outside its array"), env.Undefined();
  }
  return run_or_queue(info, off_thread(info, 11), [=] {
    if (m == 0 || n == 0) return;
    if (k == 0) {
      for (size_t t = 0; t < col; ++t) std::fill(c + co[t], c + co[t] + cs, 0.0f);
    } else {
      kiln::sgemm_batched(ta, tb, int(m), int(n), int(k), a, b, c, ao, bo, co, int(aol));
    }
  });
}

// A typed array's data and length, for the two kinds a program reads and writes: float32, and
// bool stored as one byte (a Uint8Array).
bool program_value(const Napi::Value& v, void** data, size_t* length, bool* is_bool) {
  float* f;
  uint8_t* u;
  if (typed(v, napi_float32_array, &f, length)) return *data = f, *is_bool = false, true;
  if (typed(v, napi_uint8_array, &u, length)) return *data = u, *is_bool = true, true;
  return false;
}

bool whole_numbers(const Napi::Value& v, std::vector<int64_t>* out) {
  double* d;
  size_t n;
  if (!typed(v, napi_float64_array, &d, &n)) return false;
  out->resize(n);
  for (size_t i = 0; i < n; ++i) {
    if (!(d[i] >= 0 && d[i] <= 9007199254740991.0) || d[i] != std::floor(d[i])) return false;
    (*out)[i] = int64_t(d[i]);
  }
  return true;
}

// A program checked once, when its kernel is made: its steps, its inputs' strides over its shape,
// the slots its outputs store, and how far each input's strides reach. Running it then only checks
// the arrays it is given.
struct PreparedProgram {
  std::vector<kiln::ProgramStep> steps;
  std::vector<int64_t> strides, shape, reach;
  std::vector<int32_t> slots;
  int n_inputs = 0;
  int64_t total = 1;
  // The program's generated loop, once attached (attachGroup), and which inputs and outputs it
  // reads and writes as bool: a run whose arrays differ runs in the interpreter. Set on the
  // JavaScript thread while a run off it may be reading, hence atomic.
  std::atomic<kiln::GroupFn> group{nullptr};
  std::vector<bool> group_bools;

  // The layout a generated loop must be made for: per input, 'f' or 'b' (float32 or bool) read
  // along the row, capitalized where its stride along the row is 0 (one value); '>', then 'f' or
  // 'b' per output. Empty where an input's stride along the row is neither 0 nor 1.
  std::string layout(const std::vector<bool>& bools) const {
    const size_t rank = shape.size();
    std::string s;
    for (int i = 0; i < n_inputs; ++i) {
      const int64_t step = rank > 0 ? strides[size_t(i) * rank + rank - 1] : 0;
      if (step != 0 && step != 1) return "";
      const char kind = bools[size_t(i)] ? 'b' : 'f';
      s += step == 0 ? char(kind - 'a' + 'A') : kind;
    }
    s += '>';
    for (size_t k = 0; k < slots.size(); ++k) s += bools[size_t(n_inputs) + k] ? 'b' : 'f';
    return s;
  }
};

// createProgram(code, inputCount, strides, shape, outputSlots): code is [op, a, b, c] per step;
// strides are each input's element strides over `shape`, input after input (a Float64Array).
Napi::Value CreateProgram(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto no = [&](const char* why) { return fail(env, why), env.Undefined(); };
  if (info.Length() != 5) return no("createProgram: 5 arguments");
  auto p = std::make_unique<PreparedProgram>();
  int32_t* code;
  size_t code_length;
  if (!typed(info[0], napi_int32_array, &code, &code_length) || code_length % 4 != 0)
    return no("createProgram: code must be an Int32Array of [op, a, b, c] steps");
  const int64_t n_inputs = info[1].ToNumber().Int64Value();
  if (n_inputs < 0 || n_inputs > 4096) return no("createProgram: inputCount must be 0..4096");
  p->n_inputs = int(n_inputs);
  if (!whole_numbers(info[2], &p->strides) || !whole_numbers(info[3], &p->shape))
    return no("createProgram: strides and shape must be Float64Arrays of whole numbers");
  const int rank = int(p->shape.size());
  if (rank > 16) return no("createProgram: rank above 16");
  for (int64_t d : p->shape) p->total *= d;
  if (p->strides.size() != size_t(n_inputs) * size_t(rank)) return no("createProgram: one stride per input and axis");
  // The farthest element each input's strides reach, which its array must hold.
  p->reach.assign(size_t(n_inputs), 0);
  for (int i = 0; i < n_inputs; ++i)
    for (int d = 0; d < rank; ++d) p->reach[i] += (p->shape[d] - 1) * p->strides[size_t(i) * rank + d];
  const int n_steps = int(code_length / 4);
  p->steps.resize(n_steps);
  for (int s = 0; s < n_steps; ++s) {
    const int32_t op = code[4 * s], a = code[4 * s + 1], b = code[4 * s + 2], c = code[4 * s + 3];
    const int arity = op >= 0 && op <= kiln::kLastUnary ? 1
                      : op >= 32 && op <= kiln::kLastBinary ? 2
                      : op == int32_t(kiln::ElementOp::Where) ? 3
                                                                : 0;
    if (arity == 0) return no("createProgram: unknown op");
    const int32_t before = int32_t(n_inputs) + s;  // a step reads only inputs and earlier steps
    const int32_t args[3] = {a, b, c};
    for (int k = 0; k < 3; ++k) {
      const bool used = k < arity;
      if (used ? (args[k] < 0 || args[k] >= before) : args[k] != -1)
        return no("createProgram: a step reads a slot not computed before it");
    }
    p->steps[s] = {static_cast<kiln::ElementOp>(op), a, b, c};
  }
  int32_t* slots;
  size_t n_slots;
  if (!typed(info[4], napi_int32_array, &slots, &n_slots)) return no("createProgram: outputSlots must be an Int32Array");
  for (size_t k = 0; k < n_slots; ++k)
    if (slots[k] < n_inputs || slots[k] >= n_inputs + n_steps) return no("createProgram: an output slot is not a step");
  p->slots.assign(slots, slots + n_slots);
  auto handle = Napi::External<PreparedProgram>::New(env, p.release(), [](Napi::Env, PreparedProgram* q) { delete q; });
  handle.TypeTag(&kProgramTag);
  return handle;
}

// attachGroup(program, path, bools): loads the program's generated loop from the shared library
// at `path` (made by src/group-compiler.ts) and runs the program through it from now on, on arrays
// of the kinds in `bools` (a Uint8Array: 1 where an input, then an output, is bool). The library
// says which layout it was made for; one made for another is refused, so a loop can never be
// handed arrays it would read past. Libraries attached stay loaded for the life of the process.
Napi::Value AttachGroup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto no = [&](const std::string& why) {
    return Napi::Error::New(env, why).ThrowAsJavaScriptException(), env.Undefined();
  };
  uint8_t* bools;
  size_t n_bools;
  if (info.Length() != 3 || !info[0].IsExternal() ||
      !info[0].As<Napi::External<PreparedProgram>>().CheckTypeTag(&kProgramTag) || !info[1].IsString() ||
      !typed(info[2], napi_uint8_array, &bools, &n_bools))
    return no("attachGroup: a program made by createProgram, a library's path and a Uint8Array of bools");
  PreparedProgram& p = *info[0].As<Napi::External<PreparedProgram>>().Data();
  if (n_bools != size_t(p.n_inputs) + p.slots.size()) return no("attachGroup: one bool per input and output");
  const std::vector<bool> kinds(bools, bools + n_bools);
  const std::string expected = p.layout(kinds);
  if (expected.empty()) return no("attachGroup: an input is read with a stride along the row");
  const std::string path = info[1].As<Napi::String>();
  void* library = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!library) return no(std::string("attachGroup: ") + dlerror());
  const auto* layout = static_cast<const char*>(dlsym(library, "kiln_group_layout"));
  const auto group = reinterpret_cast<kiln::GroupFn>(dlsym(library, "kiln_group"));
  std::string refused;
  if (!layout || !group) refused = "attachGroup: " + path + " is not a kiln group library";
  else if (expected != layout)
    refused = "attachGroup: " + path + " was made for layout " + layout + ", not " + expected;
  if (!refused.empty()) {
    dlclose(library);
    return no(refused);
  }
  p.group_bools = kinds;
  p.group.store(group);
  return env.Undefined();
}

// runProgram(program, inputs, outputs): the arrays must be Float32Arrays or Uint8Arrays (bool), the
// inputs long enough for their strides, the outputs exactly the shape's size.
Napi::Value RunProgram(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto no = [&](const char* why) { return fail(env, why), env.Undefined(); };
  if ((info.Length() != 4 && info.Length() != 5) || !info[0].IsExternal() ||
      !info[0].As<Napi::External<PreparedProgram>>().CheckTypeTag(&kProgramTag))
    return no("runProgram: a program made by createProgram, inputs, outputs, a thread count and offThread");
  if (!info[1].IsArray() || !info[2].IsArray()) return no("runProgram: inputs and outputs must be arrays");
  const PreparedProgram& p = *info[0].As<Napi::External<PreparedProgram>>().Data();
  const auto in_array = info[1].As<Napi::Array>();
  const auto out_array = info[2].As<Napi::Array>();
  if (in_array.Length() != uint32_t(p.n_inputs)) return no("runProgram: not the program's count of inputs");
  if (out_array.Length() != p.slots.size()) return no("runProgram: one output per output slot");
  const int rank = int(p.shape.size());
  // Reused between calls (kernels run one at a time on a thread): no allocation per call.
  thread_local std::vector<kiln::ProgramValue> inputs, outputs;
  inputs.resize(size_t(p.n_inputs));
  outputs.resize(p.slots.size());
  for (int i = 0; i < p.n_inputs; ++i) {
    size_t length;
    auto& in = inputs[i];
    if (!program_value(in_array[uint32_t(i)], &in.data, &length, &in.is_bool))
      return no("runProgram: an input is not a Float32Array or Uint8Array");
    if (p.total > 0 && size_t(p.reach[i]) >= length) return no("runProgram: an input's strides reach past its end");
    in.strides = p.strides.data() + size_t(i) * rank;
    in.slot = i;
  }
  for (size_t k = 0; k < p.slots.size(); ++k) {
    size_t length;
    auto& out = outputs[k];
    if (!program_value(out_array[uint32_t(k)], &out.data, &length, &out.is_bool))
      return no("runProgram: an output is not a Float32Array or Uint8Array");
    if (int64_t(length) != p.total) return no("runProgram: an output's length is not the shape's size");
    out.slot = p.slots[k];
    out.strides = nullptr;
  }
  const int threads = info[3].ToNumber().Int32Value();
  // The generated loop, where one is attached and these arrays are the kinds it was made for.
  kiln::GroupFn group = p.group.load();
  for (size_t v = 0; group && v < p.group_bools.size(); ++v) {
    const bool is_bool = v < size_t(p.n_inputs) ? inputs[v].is_bool : outputs[v - p.n_inputs].is_bool;
    if (is_bool != p.group_bools[v]) group = nullptr;
  }
  if (off_thread(info, 4)) {
    // The work keeps its own copies: the next call on this thread reuses the vectors above.
    return run_or_queue(info, true, [pp = &p, ins = inputs, outs = outputs, rank, threads, group] {
      kiln::run_program(pp->steps.data(), int(pp->steps.size()), ins.data(), pp->n_inputs, outs.data(),
                        int(pp->slots.size()), pp->shape.data(), rank, threads, group);
    });
  }
  kiln::run_program(p.steps.data(), int(p.steps.size()), inputs.data(), p.n_inputs, outputs.data(),
                    int(p.slots.size()), p.shape.data(), rank, threads, group);
  return env.Undefined();
}

// reduceF32(kind, x, outer, reduced, inner, out)
Napi::Value ReduceF32(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto no = [&](const char* why) { return fail(env, why), env.Undefined(); };
  if (info.Length() != 6) return no("reduceF32: 6 arguments");
  const int32_t kind = info[0].ToNumber().Int32Value();
  if (kind < 0 || kind > 4) return no("reduceF32: unknown reduction");
  const int64_t outer = info[2].ToNumber().Int64Value(), reduced = info[3].ToNumber().Int64Value(),
                inner = info[4].ToNumber().Int64Value();
  if (outer < 0 || reduced < 0 || inner < 0) return no("reduceF32: sizes must be >= 0");
  float *x, *out;
  size_t xl, ol;
  if (!typed(info[1], napi_float32_array, &x, &xl) || !typed(info[5], napi_float32_array, &out, &ol))
    return no("reduceF32: x and out must be Float32Arrays");
  if (int64_t(xl) != outer * reduced * inner || int64_t(ol) != outer * inner)
    return no("reduceF32: lengths do not match [outer, reduced, inner]");
  kiln::reduce_f32(static_cast<kiln::Reduce>(kind), x, outer, reduced, inner, out);
  return env.Undefined();
}

// softmaxF32(x, outer, n, inner, log, out, threads, offThread?)
Napi::Value SoftmaxF32(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto no = [&](const char* why) { return fail(env, why), env.Undefined(); };
  if (info.Length() != 7 && info.Length() != 8) return no("softmaxF32: 7 arguments and offThread");
  const int64_t outer = info[1].ToNumber().Int64Value(), n = info[2].ToNumber().Int64Value(),
                inner = info[3].ToNumber().Int64Value();
  if (outer < 0 || n < 0 || inner < 0) return no("softmaxF32: sizes must be >= 0");
  float *x, *out;
  size_t xl, ol;
  if (!typed(info[0], napi_float32_array, &x, &xl) || !typed(info[5], napi_float32_array, &out, &ol))
    return no("softmaxF32: x and out must be Float32Arrays");
  if (int64_t(xl) != outer * n * inner || ol != xl) return no("softmaxF32: lengths do not match [outer, n, inner]");
  const bool log = info[4].ToBoolean();
  const int threads = info[6].ToNumber().Int32Value();
  return run_or_queue(info, off_thread(info, 7),
                      [=] { kiln::softmax_f32(x, outer, n, inner, log, out, threads); });
}

// poolF32(kind, [n, h, w, c, oh, ow], yStart, yEnd, xStart, xEnd, x, dy, out)
Napi::Value PoolF32(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto no = [&](const char* why) { return fail(env, why), env.Undefined(); };
  if (info.Length() != 9) return no("poolF32: 9 arguments");
  const int32_t kind = info[0].ToNumber().Int32Value();
  if (kind < 0 || kind > 3) return no("poolF32: unknown pooling");
  std::vector<int64_t> dims;
  if (!whole_numbers(info[1], &dims) || dims.size() != 6) return no("poolF32: sizes must be [n, h, w, c, oh, ow]");
  kiln::PoolWindows p{dims[0], dims[1], dims[2], dims[3], dims[4], dims[5], nullptr, nullptr, nullptr, nullptr};
  int32_t* bounds[4];
  size_t lengths[4];
  for (int k = 0; k < 4; ++k)
    if (!typed(info[2 + k], napi_int32_array, &bounds[k], &lengths[k]))
      return no("poolF32: window bounds must be Int32Arrays");
  if (int64_t(lengths[0]) != p.oh || int64_t(lengths[1]) != p.oh || int64_t(lengths[2]) != p.ow ||
      int64_t(lengths[3]) != p.ow)
    return no("poolF32: one bound per output row and column");
  for (int64_t i = 0; i < p.oh; ++i)
    if (bounds[0][i] < 0 || bounds[0][i] > bounds[1][i] || bounds[1][i] > p.h) return no("poolF32: a window row lies outside the input");
  for (int64_t i = 0; i < p.ow; ++i)
    if (bounds[2][i] < 0 || bounds[2][i] > bounds[3][i] || bounds[3][i] > p.w) return no("poolF32: a window column lies outside the input");
  p.y_start = bounds[0], p.y_end = bounds[1], p.x_start = bounds[2], p.x_end = bounds[3];
  float *x, *dy, *out;
  size_t xl, dyl, ol;
  if (!typed(info[6], napi_float32_array, &x, &xl) || !typed(info[7], napi_float32_array, &dy, &dyl) ||
      !typed(info[8], napi_float32_array, &out, &ol))
    return no("poolF32: x, dy and out must be Float32Arrays");
  const int64_t in = p.n * p.h * p.w * p.c, pooled = p.n * p.oh * p.ow * p.c;
  const auto pk = static_cast<kiln::Pool>(kind);
  const bool grad = pk == kiln::Pool::MaxGrad || pk == kiln::Pool::AvgGrad;
  const bool needs_x = pk != kiln::Pool::AvgGrad;
  if ((needs_x && int64_t(xl) != in) || (grad && int64_t(dyl) != pooled) || int64_t(ol) != (grad ? in : pooled))
    return no("poolF32: an array's length does not match the sizes");
  kiln::pool_f32(pk, p, x, dy, out);
  return env.Undefined();
}

// createConv(kind, [n, h, w, c, kh, kw, f, oh, ow, sh, sw, dh, dw, top, bottom, left, right]):
// a handle to the node's oneDNN primitive, freed with the handle.
Napi::Value CreateConv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto no = [&](const char* why) { return fail(env, why), env.Undefined(); };
  if (info.Length() != 2) return no("createConv: 2 arguments");
  const int32_t kind = info[0].ToNumber().Int32Value();
  if (kind < 0 || kind > 2) return no("createConv: unknown convolution");
  std::vector<int64_t> d;
  if (!whole_numbers(info[1], &d) || d.size() != 17) return no("createConv: 17 sizes");
  const kiln::ConvGeometry g{d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8],
                             d[9], d[10], d[11], d[12], d[13], d[14], d[15], d[16]};
  try {
    auto* conv = new kiln::Conv(static_cast<kiln::ConvKind>(kind), g);
    auto handle = Napi::External<kiln::Conv>::New(env, conv, [](Napi::Env, kiln::Conv* c) { delete c; });
    handle.TypeTag(&kConvTag);
    return handle;
  } catch (const dnnl::error& e) {
    return no(e.what());
  }
}

// runConv(handle, a, b, out, aLength, bLength, outLength, threads): the lengths are what the
// geometry needs; the arrays must have exactly those.
Napi::Value RunConv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto no = [&](const char* why) { return fail(env, why), env.Undefined(); };
  if ((info.Length() != 8 && info.Length() != 9) || !info[0].IsExternal() ||
      !info[0].As<Napi::External<kiln::Conv>>().CheckTypeTag(&kConvTag))
    return no("runConv: a convolution handle, 7 arguments and offThread");
  float *a, *b, *out;
  size_t al, bl, ol;
  if (!typed(info[1], napi_float32_array, &a, &al) || !typed(info[2], napi_float32_array, &b, &bl) ||
      !typed(info[3], napi_float32_array, &out, &ol))
    return no("runConv: a, b and out must be Float32Arrays");
  if (int64_t(al) != info[4].ToNumber().Int64Value() || int64_t(bl) != info[5].ToNumber().Int64Value() ||
      int64_t(ol) != info[6].ToNumber().Int64Value())
    return no("runConv: an array's length does not match the convolution");
  kiln::Conv* conv = info[0].As<Napi::External<kiln::Conv>>().Data();
  const int threads = info[7].ToNumber().Int32Value();
  return run_or_queue(info, off_thread(info, 8), [=] { conv->run(a, b, out, threads); });
}

// A matmul node's oneDNN primitive and the element counts its arrays must have (0 for no bias).
struct PreparedMatMul {
  kiln::MatMul matmul;
  int64_t a_length, b_length, out_length, bias_length;
};

int64_t volume(const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

// createMatmul(aShape, bShape, outShape, transA, transB, biasShape?): shapes as stored
// (Float64Arrays), rank 2 or more; a bias is a row of the output's width ([n], or with leading 1s).
// A handle to the node's oneDNN primitive, freed with the handle.
Napi::Value CreateMatmul(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto no = [&](const char* why) { return fail(env, why), env.Undefined(); };
  if (info.Length() != 5 && info.Length() != 6) return no("createMatmul: 5 arguments, or 6 with a bias");
  std::vector<int64_t> a, b, out, bias;
  if (!whole_numbers(info[0], &a) || !whole_numbers(info[1], &b) || !whole_numbers(info[2], &out) ||
      (info.Length() == 6 && !whole_numbers(info[5], &bias)))
    return no("createMatmul: shapes must be Float64Arrays of whole numbers");
  if (a.size() < 2 || b.size() < 2 || out.size() < std::max(a.size(), b.size()) || out.size() > DNNL_MAX_NDIMS)
    return no("createMatmul: operands of rank 2 or more, and an output of the largest rank (at most 12)");
  const bool ta = info[3].ToBoolean(), tb = info[4].ToBoolean();
  // The product's sizes must agree; oneDNN checks the batch dimensions' broadcasting itself.
  const int64_t m = ta ? a.back() : a[a.size() - 2], k = ta ? a[a.size() - 2] : a.back();
  const int64_t kb = tb ? b.back() : b[b.size() - 2], n = tb ? b[b.size() - 2] : b.back();
  if (k != kb || out[out.size() - 2] != m || out.back() != n)
    return no("createMatmul: the operands' and the output's sizes do not agree");
  if (info.Length() == 6 && (bias.empty() || bias.size() > out.size() || bias.back() != n ||
                             volume(bias) != n))
    return no("createMatmul: a bias is a row of the output's width");
  try {
    auto* prepared = new PreparedMatMul{kiln::MatMul(a, b, out, ta, tb, bias), volume(a), volume(b), volume(out),
                                        bias.empty() ? 0 : n};
    auto handle =
        Napi::External<PreparedMatMul>::New(env, prepared, [](Napi::Env, PreparedMatMul* p) { delete p; });
    handle.TypeTag(&kMatMulTag);
    return handle;
  } catch (const std::exception& e) {
    return no(e.what());
  }
}

// runMatmul(handle, a, b, bias, out, threads, offThread?): bias null for a primitive without one.
Napi::Value RunMatmul(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto no = [&](const char* why) { return fail(env, why), env.Undefined(); };
  if ((info.Length() != 6 && info.Length() != 7) || !info[0].IsExternal() ||
      !info[0].As<Napi::External<PreparedMatMul>>().CheckTypeTag(&kMatMulTag))
    return no("runMatmul: a matmul handle, a, b, bias, out, threads and offThread");
  float *a, *b, *bias = nullptr, *out;
  size_t al, bl, biasl = 0, ol;
  if (!typed(info[1], napi_float32_array, &a, &al) || !typed(info[2], napi_float32_array, &b, &bl) ||
      !typed(info[4], napi_float32_array, &out, &ol) ||
      !(info[3].IsNull() || typed(info[3], napi_float32_array, &bias, &biasl)))
    return no("runMatmul: a, b and out must be Float32Arrays, and bias one or null");
  PreparedMatMul* p = info[0].As<Napi::External<PreparedMatMul>>().Data();
  if (int64_t(al) != p->a_length || int64_t(bl) != p->b_length || int64_t(ol) != p->out_length ||
      int64_t(biasl) != p->bias_length || (bias == nullptr) != (p->bias_length == 0))
    return no("runMatmul: an array's length does not match the product");
  const int threads = info[5].ToNumber().Int32Value();
  return run_or_queue(info, off_thread(info, 6), [=] { p->matmul.run(a, b, bias, out, threads); });
}

// alignedStart(arrayBuffer): the offset of its first byte on a 64-byte cache line. The device's
// buffers and arenas start there (HostDeviceOptions.alignedStart), so a vector loop's AVX-512 load
// of 16 floats at the start of an array never straddles two lines; V8 starts its ArrayBuffers 16
// bytes apart (0, 16, 32 or 48 past a line, measured), where three in four such loads would.
Napi::Value AlignedStart(const Napi::CallbackInfo& info) {
  if (info.Length() != 1 || !info[0].IsArrayBuffer())
    return fail(info.Env(), "alignedStart: an ArrayBuffer"), info.Env().Undefined();
  const auto address = reinterpret_cast<uintptr_t>(info[0].As<Napi::ArrayBuffer>().Data());
  return Napi::Number::New(info.Env(), double((64 - address % 64) % 64));
}

// addressOf(typedArray): where its first element lies, modulo 64 (for the tests of alignedStart).
Napi::Value AddressOf(const Napi::CallbackInfo& info) {
  napi_typedarray_type type;
  size_t length;
  void* data = nullptr;
  if (info.Length() != 1 || !info[0].IsTypedArray() ||
      napi_get_typedarray_info(info.Env(), info[0], &type, &length, &data, nullptr, nullptr) != napi_ok)
    return fail(info.Env(), "addressOf: a typed array"), info.Env().Undefined();
  return Napi::Number::New(info.Env(), double(reinterpret_cast<uintptr_t>(data) % 64));
}

Napi::Value Threads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), openblas_get_num_threads());
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  const int n = info[0].ToNumber().Int32Value();
  // One count for everything that starts threads: OpenBLAS, and OpenMP (oneDNN, the programs).
  // OpenMP's is per calling thread, so a device in a worker thread keeps to its own share.
  if (n >= 1) {
    openblas_set_num_threads(n);
    omp_set_num_threads(n);
  }
  return info.Env().Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("sgemmBatched", Napi::Function::New(env, SgemmBatched));
  exports.Set("createProgram", Napi::Function::New(env, CreateProgram));
  exports.Set("runProgram", Napi::Function::New(env, RunProgram));
  exports.Set("attachGroup", Napi::Function::New(env, AttachGroup));
  exports.Set("reduceF32", Napi::Function::New(env, ReduceF32));
  exports.Set("softmaxF32", Napi::Function::New(env, SoftmaxF32));
  exports.Set("poolF32", Napi::Function::New(env, PoolF32));
  exports.Set("createMatmul", Napi::Function::New(env, CreateMatmul));
  exports.Set("runMatmul", Napi::Function::New(env, RunMatmul));
  exports.Set("createConv", Napi::Function::New(env, CreateConv));
  exports.Set("runConv", Napi::Function::New(env, RunConv));
  exports.Set("alignedStart", Napi::Function::New(env, AlignedStart));
  exports.Set("addressOf", Napi::Function::New(env, AddressOf));
  exports.Set("threads", Napi::Function::New(env, Threads));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
  exports.Set("blas", Napi::String::New(env, openblas_get_config()));
  // The kernels OpenBLAS picked for this CPU at load (or that OPENBLAS_CORETYPE forced).
  exports.Set("blasCore", Napi::String::New(env, openblas_get_corename()));
  return exports;
}

}  // namespace

NODE_API_MODULE(kiln_native, Init)
