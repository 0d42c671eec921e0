#include "cuda_kernels/pool_mix.h"

#include <algorithm>

#include "cuda_kernels/launch.cuh"
#include "core/kernels/pool_mix_tiles.h"

namespace pmpl::cuda {
namespace {

using kernels::MixTile;
using kernels::PoolMixShape;
constexpr int kWeights = kernels::kPoolMixWeights;
static_assert(kernels::kMixThreads == kThreads, "one thread per (column, channel) of a tile");

// The tiling (core/kernels/pool_mix_tiles.h) as a CUDA grid.
dim3 grid_for(const PoolMixShape& s, int rows) {
  int64_t x, y, z;
  kernels::mix_grid(s, rows, x, y, z);
  if (x > 0x7fffffff || y > 65535 || z > 65535) {
    throw_internal(__FILE__, __LINE__,
                   "meta_pool_mix: tensor too large for the tiled kernels' grid (" + std::to_string(s.n) +
                       " images of " + std::to_string(s.h) + "x" + std::to_string(s.w) + "x" + std::to_string(s.c) +
                       ")");
  }
  return dim3(static_cast<unsigned>(x), static_cast<unsigned>(y), static_cast<unsigned>(z));
}

__device__ MixTile this_tile(const PoolMixShape& s, int rows) {
  return kernels::mix_tile(s, rows, blockIdx.x, blockIdx.y, blockIdx.z);
}

// The strip branch of an output from x's value there and the attention.
template <class S>
__device__ float strip_at(const S* a_h, const S* a_w, const kernels::MixPixel& p, float x) {
  return kernels::pool_mix_strip(x, load(a_w, p.attention_w), load(a_h, p.attention_h));
}

template <class S>
__global__ void __launch_bounds__(kThreads) pool_mix_forward_kernel(const S* x, const S* a_h, const S* a_w,
                                                                     const float* w, S* y, PoolMixShape s) {
  __shared__ kernels::MixScanTile tile;
  float wl[kWeights];
  for (int k = 0; k < kWeights; ++k) wl[k] = w[k];
  const MixTile t = this_tile(s, kernels::kMixScanRows);
  kernels::mix_load_scan_tile(tile, s, t, threadIdx.x, [&](int64_t i) { return load(x, i); });
  __syncthreads();
  kernels::mix_scan_column(tile, s, t, threadIdx.x,
                           [&](const kernels::MixPixel& p, float skip, const kernels::PoolMixBranches<float>& b,
                               const kernels::PoolMixRow<float>&) {
                             store(y, p.o, kernels::pool_mix_value(skip, strip_at(a_h, a_w, p, skip), b, wl));
                           });
}

// Pass 1: every output's winners and, per block, the sums dy * branch (double, a fixed tree).
template <class S>
__global__ void __launch_bounds__(kThreads) pool_mix_winners_kernel(const S* x, const S* a_h, const S* a_w, const S* dy,
                                                                     uint16_t* winners, double* partials,
                                                                     PoolMixShape s) {
  __shared__ kernels::MixScanTile tile;
  __shared__ double sums[kWeights][kThreads];
  const MixTile t = this_tile(s, kernels::kMixScanRows);
  kernels::mix_load_scan_tile(tile, s, t, threadIdx.x, [&](int64_t i) { return load(x, i); });
  __syncthreads();
  double mine[kWeights] = {};
  kernels::mix_scan_column(tile, s, t, threadIdx.x,
                           [&](const kernels::MixPixel& p, float skip, const kernels::PoolMixBranches<float>& b,
                               const kernels::PoolMixRow<float>& centre) {
                             const double d = load(dy, p.o);
                             const float strip_value = strip_at(a_h, a_w, p, skip);
#pragma unroll
                             for (int k = 0; k < kWeights; ++k) {
                               mine[k] += d * static_cast<double>(kernels::pool_mix_branch(skip, strip_value, b, k));
                             }
                             winners[p.o] = kernels::mix_winners(b, centre);
                           });
  for (int k = 0; k < kWeights; ++k) sums[k][threadIdx.x] = mine[k];
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) {
      for (int k = 0; k < kWeights; ++k) sums[k][threadIdx.x] += sums[k][threadIdx.x + half];
    }
    __syncthreads();
  }
  const int64_t block = (static_cast<int64_t>(blockIdx.z) * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
  if (threadIdx.x < kWeights) partials[block * kWeights + threadIdx.x] = sums[threadIdx.x][0];
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

// Pass 2, one input row of the tile at a time: the row gradients of the row's 22 columns, then
// each input's gradient (pools, skip and strip branches) and its strip attention terms; d a_h
// partials per row, d a_w partials per column at the end (core/kernels/pool_mix_tiles.h).
template <class S>
__global__ void __launch_bounds__(kThreads) pool_mix_input_grad_kernel(const S* x, const S* a_h, const S* a_w,
                                                                        const S* dy, const uint16_t* winners,
                                                                        const float* w, S* dx, double* a_h_partials,
                                                                        double* a_w_partials, PoolMixShape s) {
  __shared__ kernels::MixGradTiles tiles;
  float wl[kWeights];
  for (int k = 0; k < kWeights; ++k) wl[k] = w[k];
  const MixTile t = this_tile(s, kernels::kMixGradRows);
  kernels::mix_load_grad_tiles(
      tiles, s, t, threadIdx.x, [&](int64_t i) { return load(dy, i); }, [&](int64_t i) { return winners[i]; });
  __syncthreads();
  auto at = [](const S* p) { return [p](int64_t i) { return load(p, i); }; };
  double a_w_sum = 0.0;
  const int rows = kernels::mix_grad_rows(s, t);  // the same for the whole block
  for (int i = 0; i < rows; ++i) {
    kernels::mix_row_grads(tiles, s, t, i, threadIdx.x, wl);
    __syncthreads();
    kernels::mix_input_grad(tiles, s, t, i, threadIdx.x, wl, at(x), at(a_h), at(a_w), a_w_sum,
                            [&](int64_t o, float gx) {
                              if (dx != nullptr) store(dx, o, gx);
                            });
    __syncthreads();  // the next row overwrites the row gradients; this one's d a_h terms are ready
    kernels::mix_row_a_h(tiles, s, t, i, threadIdx.x, [&](int64_t index, double sum) { a_h_partials[index] = sum; });
  }
  kernels::mix_column_a_w(s, t, threadIdx.x, a_w_sum, [&](int64_t index, double sum) { a_w_partials[index] = sum; });
}

// The strip attention's gradients from pass 2's partials, the tiles added in order:
// d a_h[n, h, c] over column tiles, d a_w[n, w, c] over row tiles.
template <class S>
__global__ void pool_mix_strip_reduce_kernel(const double* a_h_partials, const double* a_w_partials, S* da_h, S* da_w,
                                             PoolMixShape s, kernels::MixStripPartials p) {
  PMPL_FOR_EACH(i, s.n * s.h * s.c) {
    const int64_t c = i % s.c, nh = i / s.c;
    double sum = 0.0;
    for (int64_t tile = 0; tile < p.column_tiles; ++tile) sum += a_h_partials[p.a_h_index(s, nh / s.h, nh % s.h, tile, c)];
    store(da_h, i, static_cast<float>(sum));
  }
  PMPL_FOR_EACH(i, s.n * s.w * s.c) {
    const int64_t c = i % s.c, nw = i / s.c;
    double sum = 0.0;
    for (int64_t tile = 0; tile < p.row_tiles; ++tile) sum += a_w_partials[p.a_w_index(s, nw / s.w, tile, nw % s.w, c)];
    store(da_w, i, static_cast<float>(sum));
  }
}

}  // namespace

void pool_mix_forward(DType dtype, const void* x, const void* a_h, const void* a_w, const float* w, void* y,
                      const PoolMixShape& s) {
  if (s.n * s.h * s.w * s.c == 0) return;
  const dim3 grid = grid_for(s, kernels::kMixScanRows);
  dispatch_storage(dtype, "meta_pool_mix", [&](auto tag) {
    using S = decltype(tag);
    pool_mix_forward_kernel<<<grid, kThreads>>>(static_cast<const S*>(x), static_cast<const S*>(a_h),
                                                static_cast<const S*>(a_w), w, static_cast<S*>(y), s);
  });
  check_launch();
}

namespace {
int64_t weight_partials(const PoolMixShape& s) {
  const dim3 grid = grid_for(s, kernels::kMixScanRows);
  return static_cast<int64_t>(grid.x) * grid.y * grid.z * kWeights;
}
}  // namespace

int64_t pool_mix_partials(const PoolMixShape& s) {
  if (s.n * s.h * s.w * s.c == 0) return 0;
  const kernels::MixStripPartials p = kernels::mix_strip_partials(s);
  return weight_partials(s) + p.a_h_count(s) + p.a_w_count(s);
}

void pool_mix_backward(DType dtype, const void* x, const void* a_h, const void* a_w, const float* w, const void* dy,
                       void* dx, void* da_h, void* da_w, float* dw, uint8_t* winners, double* partials,
                       const PoolMixShape& s) {
  if (s.n * s.h * s.w * s.c == 0) {
    if (dw != nullptr) CUDA_CHECK(cudaMemsetAsync(dw, 0, kWeights * sizeof(float)));  // a sum over nothing
    if (da_h != nullptr) CUDA_CHECK(cudaMemsetAsync(da_h, 0, s.n * s.h * s.c * dtype_size(dtype)));
    if (da_w != nullptr) CUDA_CHECK(cudaMemsetAsync(da_w, 0, s.n * s.w * s.c * dtype_size(dtype)));
    return;
  }
  auto* packed = reinterpret_cast<uint16_t*>(winners);
  const kernels::MixStripPartials strip = kernels::mix_strip_partials(s);
  double* a_h_partials = partials + weight_partials(s);
  double* a_w_partials = a_h_partials + strip.a_h_count(s);
  dispatch_storage(dtype, "meta_pool_mix", [&](auto tag) {
    using S = decltype(tag);
    const auto* xs = static_cast<const S*>(x);
    const auto *hs = static_cast<const S*>(a_h), *ws = static_cast<const S*>(a_w);
    // Pass 1 feeds dw and dx (its winners).
    if (dw != nullptr || dx != nullptr) {
      pool_mix_winners_kernel<<<grid_for(s, kernels::kMixScanRows), kThreads>>>(xs, hs, ws, static_cast<const S*>(dy),
                                                                                packed, partials, s);
      check_launch();
    }
    if (dw != nullptr) {
      pool_mix_reduce_kernel<<<kWeights, kThreads>>>(partials, weight_partials(s) / kWeights, dw);
      check_launch();
    }
    if (dx != nullptr || da_h != nullptr) {
      pool_mix_input_grad_kernel<<<grid_for(s, kernels::kMixGradRows), kThreads>>>(
          xs, hs, ws, static_cast<const S*>(dy), packed, w, static_cast<S*>(dx), a_h_partials, a_w_partials, s);
      check_launch();
    }
    if (da_h != nullptr) {
      pool_mix_strip_reduce_kernel<<<blocks_for(s.n * std::max(s.h, s.w) * s.c), kThreads>>>(
          a_h_partials, a_w_partials, static_cast<S*>(da_h), static_cast<S*>(da_w), s, strip);
      check_launch();
    }
  });
}

}  // namespace pmpl::cuda
