#include "cuda_kernels/pool.h"

#include "cuda_kernels/launch.cuh"

namespace pmpl::cuda {
namespace {

using kernels::PoolGeometry;

template <class S>
__global__ void pool_max_forward_kernel(const S* x, S* y, uint8_t* taps, PoolGeometry g) {
  PMPL_FOR_EACH(i, g.n * g.ho * g.wo * g.c) {
    const int64_t c = i % g.c, r = i / g.c, ow = r % g.wo, oh = (r / g.wo) % g.ho, n = r / (g.wo * g.ho);
    int tap = 0;
    store(y, i, kernels::max_pool_value(x, g, n, oh, ow, c, tap));
    if (taps != nullptr) taps[i] = static_cast<uint8_t>(tap);
  }
}

template <class S>
__global__ void pool_avg_forward_kernel(const S* x, S* y, PoolGeometry g) {
  PMPL_FOR_EACH(i, g.n * g.ho * g.wo * g.c) {
    const int64_t c = i % g.c, r = i / g.c, ow = r % g.wo, oh = (r / g.wo) % g.ho, n = r / (g.wo * g.ho);
    store(y, i, kernels::avg_pool_value(x, g, n, oh, ow, c));
  }
}

template <bool kMax, class S>
__global__ void pool_backward_kernel(const S* dy, const uint8_t* taps, S* dx, PoolGeometry g) {
  PMPL_FOR_EACH(i, g.n * g.h * g.w * g.c) {
    const int64_t c = i % g.c, r = i / g.c, iw = r % g.w, ih = (r / g.w) % g.h, n = r / (g.w * g.h);
    store(dx, i, kernels::pool_input_grad<kMax>(dy, taps, g, n, ih, iw, c));
  }
}

}  // namespace

void pool_forward(DType dtype, bool is_max, const void* x, void* y, uint8_t* taps, const PoolGeometry& g) {
  const int64_t count = g.n * g.ho * g.wo * g.c;
  if (count == 0) return;
  dispatch_storage(dtype, is_max ? "max_pool2d" : "avg_pool2d", [&](auto tag) {
    using S = decltype(tag);
    if (is_max) {
      pool_max_forward_kernel<<<blocks_for(count), kThreads>>>(static_cast<const S*>(x), static_cast<S*>(y), taps, g);
    } else {
      pool_avg_forward_kernel<<<blocks_for(count), kThreads>>>(static_cast<const S*>(x), static_cast<S*>(y), g);
    }
  });
  check_launch();
}

void pool_backward(DType dtype, bool is_max, const void* dy, const uint8_t* taps, void* dx, const PoolGeometry& g) {
  const int64_t count = g.n * g.h * g.w * g.c;
  if (count == 0) return;
  dispatch_storage(dtype, is_max ? "max_pool2d" : "avg_pool2d", [&](auto tag) {
    using S = decltype(tag);
    if (is_max) {
      pool_backward_kernel<true><<<blocks_for(count), kThreads>>>(static_cast<const S*>(dy), taps,
                                                                  static_cast<S*>(dx), g);
    } else {
      pool_backward_kernel<false><<<blocks_for(count), kThreads>>>(static_cast<const S*>(dy), taps,
                                                                   static_cast<S*>(dx), g);
    }
  });
  check_launch();
}

}  // namespace pmpl::cuda
