#include "cuda_kernels/pool_mix.h"

#include "cuda_kernels/launch.cuh"
#include "engine/kernels/pool_mix_tiles.h"

namespace pmpl::cuda {
namespace {

using kernels::MixTile;
using kernels::PoolMixShape;
constexpr int kWeights = kernels::kPoolMixWeights;
static_assert(kernels::kMixThreads == kThreads, "one thread per (column, channel) of a tile");

// The tiling (engine/kernels/pool_mix_tiles.h) as a CUDA grid.
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

template <class S>
__global__ void __launch_bounds__(kThreads) pool_mix_forward_kernel(const S* x, const S* strip, const float* w, S* y,
                                                                     PoolMixShape s) {
  __shared__ kernels::MixScanTile tile;
  float wl[kWeights];
  for (int k = 0; k < kWeights; ++k) wl[k] = w[k];
  const MixTile t = this_tile(s, kernels::kMixScanRows);
  kernels::mix_load_scan_tile(tile, s, t, threadIdx.x, [&](int64_t i) { return load(x, i); });
  __syncthreads();
  kernels::mix_scan_column(tile, s, t, threadIdx.x,
                           [&](int64_t o, float skip, const kernels::PoolMixBranches<float>& b,
                               const kernels::PoolMixRow<float>&) {
                             store(y, o, kernels::pool_mix_value(skip, load(strip, o), b, wl));
                           });
}

// Pass 1: every output's winners and, per block, the sums dy * branch (double, a fixed tree).
template <class S>
__global__ void __launch_bounds__(kThreads) pool_mix_winners_kernel(const S* x, const S* strip, const S* dy,
                                                                     uint16_t* winners, double* partials,
                                                                     PoolMixShape s) {
  __shared__ kernels::MixScanTile tile;
  __shared__ double sums[kWeights][kThreads];
  const MixTile t = this_tile(s, kernels::kMixScanRows);
  kernels::mix_load_scan_tile(tile, s, t, threadIdx.x, [&](int64_t i) { return load(x, i); });
  __syncthreads();
  double mine[kWeights] = {};
  kernels::mix_scan_column(tile, s, t, threadIdx.x,
                           [&](int64_t o, float skip, const kernels::PoolMixBranches<float>& b,
                               const kernels::PoolMixRow<float>& centre) {
                             const double d = load(dy, o);
                             const float strip_value = load(strip, o);
#pragma unroll
                             for (int k = 0; k < kWeights; ++k) {
                               mine[k] += d * static_cast<double>(kernels::pool_mix_branch(skip, strip_value, b, k));
                             }
                             winners[o] = kernels::mix_winners(b, centre);
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
// each input's gradient; dstrip = w[1] dy.
template <class S>
__global__ void __launch_bounds__(kThreads) pool_mix_input_grad_kernel(const S* dy, const uint16_t* winners,
                                                                        const float* w, S* dx, S* dstrip,
                                                                        PoolMixShape s) {
  __shared__ kernels::MixGradTiles tiles;
  float wl[kWeights];
  for (int k = 0; k < kWeights; ++k) wl[k] = w[k];
  const MixTile t = this_tile(s, kernels::kMixGradRows);
  kernels::mix_load_grad_tiles(
      tiles, s, t, threadIdx.x, [&](int64_t i) { return load(dy, i); }, [&](int64_t i) { return winners[i]; });
  __syncthreads();
  const int rows = kernels::mix_grad_rows(s, t);  // the same for the whole block
  for (int i = 0; i < rows; ++i) {
    kernels::mix_row_grads(tiles, s, t, i, threadIdx.x, wl);
    __syncthreads();
    kernels::mix_input_grad(tiles, s, t, i, threadIdx.x, wl, [&](int64_t o, float gx, float gstrip) {
      if (dx != nullptr) store(dx, o, gx);
      if (dstrip != nullptr) store(dstrip, o, gstrip);
    });
    __syncthreads();  // the next row overwrites the row gradients
  }
}

}  // namespace

void pool_mix_forward(DType dtype, const void* x, const void* strip, const float* w, void* y, const PoolMixShape& s) {
  if (s.n * s.h * s.w * s.c == 0) return;
  const dim3 grid = grid_for(s, kernels::kMixScanRows);
  dispatch_storage(dtype, "meta_pool_mix", [&](auto tag) {
    using S = decltype(tag);
    pool_mix_forward_kernel<<<grid, kThreads>>>(static_cast<const S*>(x), static_cast<const S*>(strip), w,
                                                static_cast<S*>(y), s);
  });
  check_launch();
}

int64_t pool_mix_partials(const PoolMixShape& s) {
  if (s.n * s.h * s.w * s.c == 0) return 0;
  const dim3 grid = grid_for(s, kernels::kMixScanRows);
  return static_cast<int64_t>(grid.x) * grid.y * grid.z * kWeights;
}

void pool_mix_backward(DType dtype, const void* x, const void* strip, const float* w, const void* dy, void* dx,
                       void* dstrip, float* dw, uint8_t* winners, double* partials, const PoolMixShape& s) {
  if (s.n * s.h * s.w * s.c == 0) {
    if (dw != nullptr) CUDA_CHECK(cudaMemsetAsync(dw, 0, kWeights * sizeof(float)));  // a sum over nothing
    return;
  }
  auto* packed = reinterpret_cast<uint16_t*>(winners);
  const dim3 scan_grid = grid_for(s, kernels::kMixScanRows);
  dispatch_storage(dtype, "meta_pool_mix", [&](auto tag) {
    using S = decltype(tag);
    // Pass 1 feeds dw and dx; dstrip alone is w[1] dy, pass 2's last step.
    if (dw != nullptr || dx != nullptr) {
      pool_mix_winners_kernel<<<scan_grid, kThreads>>>(static_cast<const S*>(x), static_cast<const S*>(strip),
                                                       static_cast<const S*>(dy), packed, partials, s);
      check_launch();
    }
    if (dw != nullptr) {
      pool_mix_reduce_kernel<<<kWeights, kThreads>>>(partials, pool_mix_partials(s) / kWeights, dw);
      check_launch();
    }
    if (dx != nullptr || dstrip != nullptr) {
      pool_mix_input_grad_kernel<<<grid_for(s, kernels::kMixGradRows), kThreads>>>(
          static_cast<const S*>(dy), packed, w, static_cast<S*>(dx), static_cast<S*>(dstrip), s);
      check_launch();
    }
  });
}

}  // namespace pmpl::cuda
