#include "cuda_kernels/pool_mix.h"

#include "cuda_kernels/launch.cuh"

namespace pmpl::cuda {
namespace {

using kernels::PoolMixShape;
constexpr int kWeights = kernels::kPoolMixWeights;

__host__ __device__ int64_t elements(const PoolMixShape& s) { return s.n * s.h * s.w * s.c; }
// The backward's pass 1 reduces per block, so it runs one thread per element (no grid stride).
int64_t exact_blocks(int64_t count) { return (count + kThreads - 1) / kThreads; }

// One thread per output element, channels fastest: neighbouring threads read neighbouring
// channels of the same window pixels, so loads coalesce and the window overlap hits the caches.
__device__ void position(int64_t i, const PoolMixShape& s, int64_t& n, int64_t& h, int64_t& w, int64_t& c) {
  c = i % s.c;
  int64_t r = i / s.c;
  w = r % s.w;
  r /= s.w;
  h = r % s.h;
  n = r / s.h;
}

template <class S>
__global__ void pool_mix_forward_kernel(const S* x, const S* strip, const float* w, S* y, PoolMixShape s) {
  float wl[kWeights];
  for (int k = 0; k < kWeights; ++k) wl[k] = w[k];
  PMPL_FOR_EACH(i, elements(s)) {
    int64_t n, h, ww, c;
    position(i, s, n, h, ww, c);
    const auto b = kernels::pool_mix_branches(x, s, n, h, ww, c);
    store(y, i, kernels::pool_mix_value(load(x, i), load(strip, i), b, wl));
  }
}

// Pass 1: the taps of every output, and per block the sums dy * branch (double, a fixed tree).
template <class S>
__global__ void pool_mix_taps_kernel(const S* x, const S* strip, const S* dy, uint8_t* taps, double* partials,
                                     PoolMixShape s) {
  __shared__ double sums[kWeights][kThreads];
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  double mine[kWeights] = {};
  if (i < elements(s)) {
    int64_t n, h, ww, c;
    position(i, s, n, h, ww, c);
    const auto b = kernels::pool_mix_branches(x, s, n, h, ww, c);
    taps[3 * i] = static_cast<uint8_t>(b.tap3);
    taps[3 * i + 1] = static_cast<uint8_t>(b.tap5);
    taps[3 * i + 2] = static_cast<uint8_t>(b.tap7);
    const double d = load(dy, i);
    const float branch[kWeights] = {load(x, i), load(strip, i), b.max3, b.max5, b.max7, b.avg3, b.avg5, b.avg7};
    for (int k = 0; k < kWeights; ++k) mine[k] = d * static_cast<double>(branch[k]);
  }
  for (int k = 0; k < kWeights; ++k) sums[k][threadIdx.x] = mine[k];
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) {
      for (int k = 0; k < kWeights; ++k) sums[k][threadIdx.x] += sums[k][threadIdx.x + half];
    }
    __syncthreads();
  }
  if (threadIdx.x < kWeights) partials[static_cast<int64_t>(blockIdx.x) * kWeights + threadIdx.x] = sums[threadIdx.x][0];
}

// One block per weight: strided sums of the partials, then a fixed tree: deterministic.
__global__ void pool_mix_reduce_kernel(const double* partials, int64_t count, float* dw) {
  __shared__ double sums[kThreads];
  double acc = 0.0;
  for (int64_t b = threadIdx.x; b < count; b += kThreads) acc += partials[b * kWeights + blockIdx.x];
  sums[threadIdx.x] = acc;
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) sums[threadIdx.x] += sums[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) dw[blockIdx.x] = static_cast<float>(sums[0]);
}

// Pass 2: each input gathers from the outputs covering it, plus the skip term; the strip
// branch's gradient is w[1] dy.
template <class S>
__global__ void pool_mix_input_grad_kernel(const S* dy, const uint8_t* taps, const float* w, S* dx, S* dstrip,
                                           PoolMixShape s) {
  float wl[kWeights];
  for (int k = 0; k < kWeights; ++k) wl[k] = w[k];
  PMPL_FOR_EACH(i, elements(s)) {
    if (dx != nullptr) {
      int64_t n, h, ww, c;
      position(i, s, n, h, ww, c);
      float g = kernels::pool_mix_input_grad(dy, taps, s, n, h, ww, c, wl);
      g += wl[0] * load(dy, i);
      store(dx, i, g);
    }
    if (dstrip != nullptr) store(dstrip, i, wl[1] * load(dy, i));
  }
}

}  // namespace

void pool_mix_forward(DType dtype, const void* x, const void* strip, const float* w, void* y, const PoolMixShape& s) {
  if (elements(s) == 0) return;
  dispatch_storage(dtype, "meta_pool_mix", [&](auto tag) {
    using S = decltype(tag);
    pool_mix_forward_kernel<<<blocks_for(elements(s)), kThreads>>>(static_cast<const S*>(x),
                                                                   static_cast<const S*>(strip), w,
                                                                   static_cast<S*>(y), s);
  });
  check_launch();
}

int64_t pool_mix_partials(const PoolMixShape& s) { return exact_blocks(elements(s)) * kWeights; }

void pool_mix_backward(DType dtype, const void* x, const void* strip, const float* w, const void* dy, void* dx,
                       void* dstrip, float* dw, uint8_t* taps, double* partials, const PoolMixShape& s) {
  if (elements(s) == 0) return;
  const int64_t blocks = exact_blocks(elements(s));
  dispatch_storage(dtype, "meta_pool_mix", [&](auto tag) {
    using S = decltype(tag);
    pool_mix_taps_kernel<<<static_cast<unsigned>(blocks), kThreads>>>(
        static_cast<const S*>(x), static_cast<const S*>(strip), static_cast<const S*>(dy), taps, partials, s);
    check_launch();
    if (dw != nullptr) {
      pool_mix_reduce_kernel<<<kWeights, kThreads>>>(partials, blocks, dw);
      check_launch();
    }
    if (dx != nullptr || dstrip != nullptr) {
      pool_mix_input_grad_kernel<<<blocks_for(elements(s)), kThreads>>>(
          static_cast<const S*>(dy), taps, w, static_cast<S*>(dx), static_cast<S*>(dstrip), s);
      check_launch();
    }
  });
}

}  // namespace pmpl::cuda
