#include "cuda_kernels/pool_mix.h"

#include "engine/cuda_check.h"

namespace pmpl::cuda {
namespace {

using kernels::PoolMixShape;
constexpr int kThreads = 256;
constexpr int kWeights = kernels::kPoolMixWeights;

__host__ __device__ int64_t elements(const PoolMixShape& s) { return s.n * s.h * s.w * s.c; }
int blocks_for(int64_t count) { return static_cast<int>((count + kThreads - 1) / kThreads); }

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

__global__ void pool_mix_forward_kernel(const float* x, const float* strip, const float* w, float* y, PoolMixShape s) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= elements(s)) return;
  int64_t n, h, ww, c;
  position(i, s, n, h, ww, c);
  float wl[kWeights];
  for (int k = 0; k < kWeights; ++k) wl[k] = w[k];
  const auto b = kernels::pool_mix_branches(x, s, n, h, ww, c);
  y[i] = kernels::pool_mix_value(x[i], strip[i], b, wl);
}

// Pass 1: the taps of every output, and per block the sums dy * branch (double, a fixed tree).
__global__ void pool_mix_taps_kernel(const float* x, const float* strip, const float* dy, uint8_t* taps, double* partials,
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
    const double d = dy[i];
    const float branch[kWeights] = {x[i], strip[i], b.max3, b.max5, b.max7, b.avg3, b.avg5, b.avg7};
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
__global__ void pool_mix_input_grad_kernel(const float* dy, const uint8_t* taps, const float* w, float* dx, float* dstrip,
                                  PoolMixShape s) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= elements(s)) return;
  float wl[kWeights];
  for (int k = 0; k < kWeights; ++k) wl[k] = w[k];
  if (dx != nullptr) {
    int64_t n, h, ww, c;
    position(i, s, n, h, ww, c);
    float g = kernels::pool_mix_input_grad(dy, taps, s, n, h, ww, c, wl);
    g += wl[0] * dy[i];
    dx[i] = g;
  }
  if (dstrip != nullptr) dstrip[i] = wl[1] * dy[i];
}

}  // namespace

void pool_mix_forward(const float* x, const float* strip, const float* w, float* y, const PoolMixShape& s) {
  if (elements(s) == 0) return;
  pool_mix_forward_kernel<<<blocks_for(elements(s)), kThreads>>>(x, strip, w, y, s);
  CUDA_CHECK(cudaGetLastError());
}

int64_t pool_mix_partials(const PoolMixShape& s) { return static_cast<int64_t>(blocks_for(elements(s))) * kWeights; }

void pool_mix_backward(const float* x, const float* strip, const float* w, const float* dy, float* dx, float* dstrip,
                       float* dw, uint8_t* taps, double* partials, const PoolMixShape& s) {
  if (elements(s) == 0) return;
  const int blocks = blocks_for(elements(s));
  pool_mix_taps_kernel<<<blocks, kThreads>>>(x, strip, dy, taps, partials, s);
  CUDA_CHECK(cudaGetLastError());
  if (dw != nullptr) {
    pool_mix_reduce_kernel<<<kWeights, kThreads>>>(partials, blocks, dw);
    CUDA_CHECK(cudaGetLastError());
  }
  if (dx != nullptr || dstrip != nullptr) {
    pool_mix_input_grad_kernel<<<blocks, kThreads>>>(dy, taps, w, dx, dstrip, s);
    CUDA_CHECK(cudaGetLastError());
  }
}

}  // namespace pmpl::cuda
