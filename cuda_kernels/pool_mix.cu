#include "cuda_kernels/pool_mix.h"

#include "cuda_kernels/launch.cuh"

namespace pmpl::cuda {
namespace {

using kernels::PoolMixShape;
constexpr int kWeights = kernels::kPoolMixWeights;
constexpr int kR = kernels::kPoolMixRadius;

// A block owns a tile of 16 channels x 16 columns x some rows; thread (tw, tc) =
// (threadIdx.x / kTileC, threadIdx.x % kTileC). 16 channels of bf16 are 32 bytes per pixel, one
// memory sector, and neighbouring threads read neighbouring shared-memory words.
constexpr int kTileC = 16;
constexpr int kTileW = kThreads / kTileC;
constexpr int kHaloW = kTileW + 2 * kR;
// Output rows per block of the forward and of pass 1: each thread walks one column, so the row
// stage of a row is computed once per block and reused by the 7 outputs below it; the 6 halo rows
// add 6 / 16. Shared memory: the input tile, 22 x 22 x 16 floats (31 KB; pass 1 adds 16 KB of
// reduction space).
constexpr int kScanRows = 16;
// Input rows per block of pass 2, whose tiles are dy (as float) and the winners with their halo
// plus one row of row gradients: 46 KB at 12 rows.
constexpr int kGradRows = 12;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The grid: x over (column tile, channel tile), y over row tiles, z over images.
dim3 grid_for(const PoolMixShape& s, int rows) {
  const int64_t x = ceil_div(s.w, kTileW) * ceil_div(s.c, kTileC), y = ceil_div(s.h, rows);
  if (x > 0x7fffffff || y > 65535 || s.n > 65535) {
    throw_internal(__FILE__, __LINE__,
                   "meta_pool_mix: tensor too large for the tiled kernels' grid (" + std::to_string(s.n) + " images of " +
                       std::to_string(s.h) + "x" + std::to_string(s.w) + "x" + std::to_string(s.c) + ")");
  }
  return dim3(static_cast<unsigned>(x), static_cast<unsigned>(y), static_cast<unsigned>(s.n));
}

struct Tile {
  int64_t n, h0, w0, c0;  // image, first row, column and channel of the block's tile
};

__device__ Tile tile_of(const PoolMixShape& s, int rows) {
  const int64_t channel_tiles = (s.c + kTileC - 1) / kTileC;
  return {static_cast<int64_t>(blockIdx.z), static_cast<int64_t>(blockIdx.y) * rows,
          static_cast<int64_t>(blockIdx.x / channel_tiles) * kTileW,
          static_cast<int64_t>(blockIdx.x % channel_tiles) * kTileC};
}

// Rows [h0, h0 + kRows) x columns [w0, w0 + kCols) x the tile's channels of a [N, H, W, C] tensor
// into shared memory, at(i) giving flat element i; 0 outside the tensor, where the spans keep
// every result from looking.
template <int kRows, int kCols, class V, class Load>
__device__ void load_tile(V (*tile)[kCols][kTileC], const PoolMixShape& s, const Tile& t, int64_t h0, int64_t w0,
                          const Load& at) {
  for (int e = threadIdx.x; e < kRows * kCols * kTileC; e += kThreads) {
    const int c = e % kTileC, col = (e / kTileC) % kCols, row = e / (kTileC * kCols);
    const int64_t h = h0 + row, w = w0 + col, ch = t.c0 + c;
    const bool inside = h >= 0 && h < s.h && w >= 0 && w < s.w && ch < s.c;
    tile[row][col][c] = inside ? at(((t.n * s.h + h) * s.w + w) * s.c + ch) : V(0);
  }
}

// The input tile of the scans: kScanRows output rows and their halo.
using ScanTile = float[kScanRows + 2 * kR][kHaloW][kTileC];

// Each thread walks its column of the tile top to bottom, keeping the row stages of the last 7
// input rows in registers (the loop is unrolled, so the ring shifts are renames), and calls
// visit(o, skip, branches, centre) for every output inside the tensor: o its flat index, skip its
// input value, centre the row stage of its own row.
template <class Visit>
__device__ void scan_tile(const ScanTile& x, const PoolMixShape& s, const Tile& t, const Visit& visit) {
  const int tw = threadIdx.x / kTileC, tc = threadIdx.x % kTileC;
  const int64_t ow = t.w0 + tw, ch = t.c0 + tc;
  if (ow >= s.w || ch >= s.c) return;
  int clo, chi;
  kernels::pool_mix_span(ow, s.w, clo, chi);
  kernels::PoolMixRow<float> ring[2 * kR + 1] = {};
#pragma unroll
  for (int i = 0; i < kScanRows + 2 * kR; ++i) {
#pragma unroll
    for (int j = 0; j < 2 * kR; ++j) ring[j] = ring[j + 1];
    ring[2 * kR] = kernels::pool_mix_row<float>([&](int d) { return x[i][tw + kR + d][tc]; }, clo, chi);
    const int64_t oh = t.h0 + i - 2 * kR;
    if (i >= 2 * kR && oh < s.h) {
      int rlo, rhi;
      kernels::pool_mix_span(oh, s.h, rlo, rhi);
      visit(((t.n * s.h + oh) * s.w + ow) * s.c + ch, x[i - kR][tw + kR][tc], kernels::pool_mix_column(ring, rlo, rhi),
            ring[kR]);
    }
  }
}

template <class S>
__global__ void __launch_bounds__(kThreads) pool_mix_forward_kernel(const S* x, const S* strip, const float* w, S* y,
                                                                     PoolMixShape s) {
  __shared__ ScanTile tile;
  float wl[kWeights];
  for (int k = 0; k < kWeights; ++k) wl[k] = w[k];
  const Tile t = tile_of(s, kScanRows);
  load_tile<kScanRows + 2 * kR, kHaloW>(tile, s, t, t.h0 - kR, t.w0 - kR, [&](int64_t i) { return load(x, i); });
  __syncthreads();
  scan_tile(tile, s, t,
            [&](int64_t o, float skip, const kernels::PoolMixBranches<float>& b, const kernels::PoolMixRow<float>&) {
              store(y, o, kernels::pool_mix_value(skip, load(strip, o), b, wl));
            });
}

// Pass 1: every output's winner bytes (low: its max windows' row offsets; high: the column
// offsets of its row's pools, as engine/kernels/pool_mix.h packs them) and, per block, the sums
// dy * branch (double, a fixed tree).
template <class S>
__global__ void __launch_bounds__(kThreads) pool_mix_winners_kernel(const S* x, const S* strip, const S* dy,
                                                                     uint16_t* winners, double* partials,
                                                                     PoolMixShape s) {
  __shared__ ScanTile tile;
  __shared__ double sums[kWeights][kThreads];
  const Tile t = tile_of(s, kScanRows);
  load_tile<kScanRows + 2 * kR, kHaloW>(tile, s, t, t.h0 - kR, t.w0 - kR, [&](int64_t i) { return load(x, i); });
  __syncthreads();
  double mine[kWeights] = {};
  scan_tile(tile, s, t,
            [&](int64_t o, float skip, const kernels::PoolMixBranches<float>& b,
                const kernels::PoolMixRow<float>& centre) {
              const double d = load(dy, o);
              const float strip_value = load(strip, o);
#pragma unroll
              for (int k = 0; k < kWeights; ++k) {
                mine[k] += d * static_cast<double>(kernels::pool_mix_branch(skip, strip_value, b, k));
              }
              winners[o] = static_cast<uint16_t>(kernels::pool_mix_pack(b.row) | (kernels::pool_mix_pack(centre.at) << 8));
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

// Pass 2, one input row of the tile at a time: the row gradients of the row's 22 columns (tile
// and halo), then each input gathers from the 7 around it and adds w[0] dy; dstrip = w[1] dy.
template <class S>
__global__ void __launch_bounds__(kThreads) pool_mix_input_grad_kernel(const S* dy, const uint16_t* winners,
                                                                        const float* w, S* dx, S* dstrip,
                                                                        PoolMixShape s) {
  __shared__ float grad[kGradRows + 2 * kR][kHaloW][kTileC];
  __shared__ uint16_t won[kGradRows + 2 * kR][kHaloW][kTileC];
  // The row gradients as arrays per window: conflict-free across the 16 channels of a half-warp.
  __shared__ float row_avg[kernels::kPoolMixWindows][kHaloW][kTileC];
  __shared__ float row_max[kernels::kPoolMixWindows][kHaloW][kTileC];
  float wl[kWeights];
  for (int k = 0; k < kWeights; ++k) wl[k] = w[k];
  const Tile t = tile_of(s, kGradRows);
  load_tile<kGradRows + 2 * kR, kHaloW>(grad, s, t, t.h0 - kR, t.w0 - kR, [&](int64_t i) { return load(dy, i); });
  load_tile<kGradRows + 2 * kR, kHaloW>(won, s, t, t.h0 - kR, t.w0 - kR, [&](int64_t i) { return winners[i]; });
  __syncthreads();
  const int tw = threadIdx.x / kTileC, tc = threadIdx.x % kTileC;
  const int64_t ch = t.c0 + tc, iw = t.w0 + tw;
  for (int i = 0; i < kGradRows; ++i) {
    const int64_t r = t.h0 + i;
    if (r >= s.h) break;  // the same for every thread of the block
    int rlo, rhi;
    kernels::pool_mix_span(r, s.h, rlo, rhi);
    for (int col = tw; col < kHaloW; col += kTileW) {
      const int64_t wc = t.w0 - kR + col;
      if (wc < 0 || wc >= s.w || ch >= s.c) continue;
      const auto g = kernels::pool_mix_row_grad<float>(
          [&](int e) { return grad[i + kR + e][col][tc]; },
          [&](int e) { return static_cast<uint8_t>(won[i + kR + e][col][tc] & 0xff); }, rlo, rhi, wl);
      for (int k = 0; k < kernels::kPoolMixWindows; ++k) {
        row_avg[k][col][tc] = g.avg[k];
        row_max[k][col][tc] = g.max[k];
      }
    }
    __syncthreads();
    if (iw < s.w && ch < s.c) {
      const int64_t o = ((t.n * s.h + r) * s.w + iw) * s.c + ch;
      const float d = grad[i + kR][tw + kR][tc];
      if (dx != nullptr) {
        int clo, chi;
        kernels::pool_mix_span(iw, s.w, clo, chi);
        const float g = kernels::pool_mix_input_grad<float>(
            [&](int e) {
              kernels::PoolMixRowGrad<float> from;
              for (int k = 0; k < kernels::kPoolMixWindows; ++k) {
                from.avg[k] = row_avg[k][tw + kR + e][tc];
                from.max[k] = row_max[k][tw + kR + e][tc];
              }
              return from;
            },
            [&](int e) { return static_cast<uint8_t>(won[i + kR][tw + kR + e][tc] >> 8); }, clo, chi);
        store(dx, o, g + wl[0] * d);
      }
      if (dstrip != nullptr) store(dstrip, o, wl[1] * d);
    }
    __syncthreads();  // the next row overwrites the row gradients
  }
}

}  // namespace

void pool_mix_forward(DType dtype, const void* x, const void* strip, const float* w, void* y, const PoolMixShape& s) {
  if (s.n * s.h * s.w * s.c == 0) return;
  const dim3 grid = grid_for(s, kScanRows);
  dispatch_storage(dtype, "meta_pool_mix", [&](auto tag) {
    using S = decltype(tag);
    pool_mix_forward_kernel<<<grid, kThreads>>>(static_cast<const S*>(x), static_cast<const S*>(strip), w,
                                                static_cast<S*>(y), s);
  });
  check_launch();
}

int64_t pool_mix_partials(const PoolMixShape& s) {
  if (s.n * s.h * s.w * s.c == 0) return 0;
  const dim3 grid = grid_for(s, kScanRows);
  return static_cast<int64_t>(grid.x) * grid.y * grid.z * kWeights;
}

void pool_mix_backward(DType dtype, const void* x, const void* strip, const float* w, const void* dy, void* dx,
                       void* dstrip, float* dw, uint8_t* winners, double* partials, const PoolMixShape& s) {
  if (s.n * s.h * s.w * s.c == 0) return;
  auto* packed = reinterpret_cast<uint16_t*>(winners);
  const dim3 scan_grid = grid_for(s, kScanRows);
  dispatch_storage(dtype, "meta_pool_mix", [&](auto tag) {
    using S = decltype(tag);
    pool_mix_winners_kernel<<<scan_grid, kThreads>>>(static_cast<const S*>(x), static_cast<const S*>(strip),
                                                     static_cast<const S*>(dy), packed, partials, s);
    check_launch();
    if (dw != nullptr) {
      pool_mix_reduce_kernel<<<kWeights, kThreads>>>(partials, pool_mix_partials(s) / kWeights, dw);
      check_launch();
    }
    if (dx != nullptr || dstrip != nullptr) {
      pool_mix_input_grad_kernel<<<grid_for(s, kGradRows), kThreads>>>(
          static_cast<const S*>(dy), packed, w, static_cast<S*>(dx), static_cast<S*>(dstrip), s);
      check_launch();
    }
  });
}

}  // namespace pmpl::cuda
