// The Node-API surface of the native kernels: each function checks what JavaScript handed it
// (typed arrays of the right kind and length) before touching memory, and throws a TypeError or
// RangeError naming the argument otherwise. Data is never copied: kernels read and write the
// typed arrays' own memory.
#include <napi.h>

#include <cblas.h>

#include <algorithm>
#include <climits>

#include "kernels.h"

namespace {

bool fail(const Napi::Env& env, const char* message) {
  Napi::RangeError::New(env, message).ThrowAsJavaScriptException();
  return false;
}

template <typename T>
bool typed(const Napi::Value& v, napi_typedarray_type type, T** data, size_t* length) {
  if (!v.IsTypedArray()) return false;
  auto array = v.As<Napi::TypedArray>();
  if (array.TypedArrayType() != type) return false;
  *length = array.ElementLength();
  *data = reinterpret_cast<T*>(static_cast<uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset());
  return true;
}

// sgemmBatched(transA, transB, m, n, k, a, b, c, aOffsets, bOffsets, cOffsets)
Napi::Value SgemmBatched(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 11) return fail(env, "sgemmBatched: 11 arguments"), env.Undefined();
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
  if (m > 0 && n > 0) {
    if (k == 0) {
      for (size_t t = 0; t < col; ++t) std::fill(c + co[t], c + co[t] + cs, 0.0f);
    } else {
      kiln::sgemm_batched(ta, tb, int(m), int(n), int(k), a, b, c, ao, bo, co, int(aol));
    }
  }
  return env.Undefined();
}

// binaryF32(op, a, b, out): b of length 1 is broadcast.
Napi::Value BinaryF32(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 4) return fail(env, "binaryF32: 4 arguments"), env.Undefined();
  const int op = info[0].ToNumber().Int32Value();
  if (op < 0 || op > 5) return fail(env, "binaryF32: unknown op"), env.Undefined();
  float *a, *b, *out;
  size_t al, bl, ol;
  if (!typed(info[1], napi_float32_array, &a, &al) || !typed(info[2], napi_float32_array, &b, &bl) ||
      !typed(info[3], napi_float32_array, &out, &ol))
    return fail(env, "binaryF32: a, b and out must be Float32Arrays"), env.Undefined();
  if (al != ol || (bl != al && bl != 1)) return fail(env, "binaryF32: lengths differ"), env.Undefined();
  if (ol > 0) kiln::binary_f32(static_cast<kiln::Binary>(op), a, b, bl == 1 && al != 1, out, ol);
  return env.Undefined();
}

Napi::Value Threads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), openblas_get_num_threads());
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  const int n = info[0].ToNumber().Int32Value();
  if (n >= 1) openblas_set_num_threads(n);
  return info.Env().Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("sgemmBatched", Napi::Function::New(env, SgemmBatched));
  exports.Set("binaryF32", Napi::Function::New(env, BinaryF32));
  exports.Set("threads", Napi::Function::New(env, Threads));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
  exports.Set("blas", Napi::String::New(env, openblas_get_config()));
  return exports;
}

}  // namespace

NODE_API_MODULE(kiln_native, Init)
