#include "cuda_kernels/im2col.h"

#include "cuda_kernels/launch.cuh"

namespace pmpl::cuda {
namespace {

template <class S>
__global__ void im2col_kernel(const S* x, ConvShape g, int64_t total, S* cols) {
  PMPL_FOR_EACH(e, total) cols[e] = kernels::im2col_value(x, g, e);
}

template <class S>
__global__ void col2im_kernel(const S* dcols, ConvShape g, int64_t total, S* dx) {
  PMPL_FOR_EACH(e, total) store(dx, e, kernels::col2im_value(dcols, g, e));
}

}  // namespace

void im2col(DType dtype, const void* x, const ConvShape& g, int64_t images, void* cols) {
  const int64_t total = images * g.ho * g.wo * g.kh * g.kw * g.cin;
  if (total == 0) return;
  dispatch_storage(dtype, "conv2d", [&](auto tag) {
    using S = decltype(tag);
    im2col_kernel<<<blocks_for(total), kThreads>>>(static_cast<const S*>(x), g, total, static_cast<S*>(cols));
  });
  check_launch();
}

void col2im(DType dtype, const void* dcols, const ConvShape& g, int64_t images, void* dx) {
  const int64_t total = images * g.h * g.w * g.cin;
  if (total == 0) return;
  dispatch_storage(dtype, "conv2d", [&](auto tag) {
    using S = decltype(tag);
    col2im_kernel<<<blocks_for(total), kThreads>>>(static_cast<const S*>(dcols), g, total, static_cast<S*>(dx));
  });
  check_launch();
}

}  // namespace pmpl::cuda
