// 2-D convolution and its two gradients on oneDNN (the 2.x API), in kiln's layouts: NHWC values and
// HWIO filters, which oneDNN reads and writes in place (format tags nhwc and hwio), so nothing is
// reordered on the way in or out. A node's primitives are made once, when it is compiled, and run
// on each call with the typed arrays' memory as their buffers.
#include <omp.h>

#include <memory>
#include <oneapi/dnnl/dnnl.hpp>

#include "kernels.h"
#include "onednn.h"

namespace kiln {

namespace {

using dnnl::memory;
using tag = memory::format_tag;

}  // namespace

struct Conv::Impl {
  ConvKind kind;
  memory::desc src, weights, dst;
  dnnl::primitive primitive;
  // The primitive's working memory, its own. oneDNN's default keeps it per thread, registered by
  // the thread that made the primitive: run on another thread (a long convolution leaves the
  // JavaScript thread), the primitive found none there and wrote through a null pointer.
  memory scratchpad;
};

Conv::Conv(ConvKind kind, const ConvGeometry& g) : impl_(std::make_unique<Impl>()) {
  const NoProfilerSignal held;
  impl_->kind = kind;
  const memory::dims strides = {g.sh, g.sw}, dilates = {g.dh - 1, g.dw - 1};
  const memory::dims pad_l = {g.pad_top, g.pad_left}, pad_r = {g.pad_bottom, g.pad_right};
  impl_->src = memory::desc({g.n, g.c, g.h, g.w}, memory::data_type::f32, tag::nhwc);
  impl_->weights = memory::desc({g.f, g.c, g.kh, g.kw}, memory::data_type::f32, tag::hwio);
  impl_->dst = memory::desc({g.n, g.f, g.oh, g.ow}, memory::data_type::f32, tag::nhwc);
  const auto& [src, weights, dst] = std::tie(impl_->src, impl_->weights, impl_->dst);
  // The forward descriptor is also the hint the backward ones are made with.
  dnnl::convolution_forward::desc forward(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                                          src, weights, dst, strides, dilates, pad_l, pad_r);
  dnnl::convolution_forward::primitive_desc hint(forward, cpu());
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  memory::desc scratch;
  switch (kind) {
    case ConvKind::Forward: {
      dnnl::convolution_forward::primitive_desc pd(forward, attr, cpu());
      impl_->primitive = dnnl::convolution_forward(pd);
      scratch = pd.scratchpad_desc();
      break;
    }
    case ConvKind::BackwardData: {
      dnnl::convolution_backward_data::desc d(dnnl::algorithm::convolution_direct, src, weights, dst, strides,
                                              dilates, pad_l, pad_r);
      dnnl::convolution_backward_data::primitive_desc pd(d, attr, cpu(), hint);
      impl_->primitive = dnnl::convolution_backward_data(pd);
      scratch = pd.scratchpad_desc();
      break;
    }
    case ConvKind::BackwardWeights: {
      dnnl::convolution_backward_weights::desc d(dnnl::algorithm::convolution_direct, src, weights, dst, strides,
                                                 dilates, pad_l, pad_r);
      dnnl::convolution_backward_weights::primitive_desc pd(d, attr, cpu(), hint);
      impl_->primitive = dnnl::convolution_backward_weights(pd);
      scratch = pd.scratchpad_desc();
      break;
    }
  }
  impl_->scratchpad = memory(scratch, cpu());
}

Conv::~Conv() = default;

void Conv::run(const float* a, const float* b, float* out, int threads) {
  const NoProfilerSignal held;
  const Impl& p = *impl_;
  // OpenMP's thread count is per calling thread: a device in a worker thread keeps to its share.
  if (threads > 0) omp_set_num_threads(threads);
  thread_local dnnl::stream stream(cpu());
  auto mem = [](const memory::desc& d, const float* data) {
    return memory(d, cpu(), const_cast<float*>(data));
  };
  switch (p.kind) {
    case ConvKind::Forward:  // a = x, b = filter, out = y
      p.primitive.execute(stream, {{DNNL_ARG_SRC, mem(p.src, a)},
                                   {DNNL_ARG_WEIGHTS, mem(p.weights, b)},
                                   {DNNL_ARG_DST, mem(p.dst, out)},
                                   {DNNL_ARG_SCRATCHPAD, p.scratchpad}});
      break;
    case ConvKind::BackwardData:  // a = dy, b = filter, out = dx
      p.primitive.execute(stream, {{DNNL_ARG_DIFF_DST, mem(p.dst, a)},
                                   {DNNL_ARG_WEIGHTS, mem(p.weights, b)},
                                   {DNNL_ARG_DIFF_SRC, mem(p.src, out)},
                                   {DNNL_ARG_SCRATCHPAD, p.scratchpad}});
      break;
    case ConvKind::BackwardWeights:  // a = x, b = dy, out = dfilter
      p.primitive.execute(stream, {{DNNL_ARG_SRC, mem(p.src, a)},
                                   {DNNL_ARG_DIFF_DST, mem(p.dst, b)},
                                   {DNNL_ARG_DIFF_WEIGHTS, mem(p.weights, out)},
                                   {DNNL_ARG_SCRATCHPAD, p.scratchpad}});
      break;
  }
  stream.wait();
}

}  // namespace kiln
