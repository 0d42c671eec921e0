#include "cuda_kernels/convert.h"

#include "cuda_kernels/launch.cuh"

namespace pmpl::cuda {
namespace {

template <class D, class S>
__global__ void convert_kernel(const S* src, D* dst, int64_t n) {
  PMPL_FOR_EACH(i, n) dst[i] = cast_value<D>(src[i]);
}

}  // namespace

void convert(const void* src, DType src_dtype, void* dst, DType dst_dtype, int64_t n) {
  if (n == 0) return;
  const int blocks = blocks_for(n);
  dispatch_any(src_dtype, [&](auto src_tag) {
    using S = decltype(src_tag);
    dispatch_any(dst_dtype, [&](auto dst_tag) {
      using D = decltype(dst_tag);
      convert_kernel<D, S><<<blocks, kThreads>>>(static_cast<const S*>(src), static_cast<D*>(dst), n);
    });
  });
  check_launch();
}

}  // namespace pmpl::cuda
