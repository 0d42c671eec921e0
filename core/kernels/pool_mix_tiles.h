// How the CUDA kernels of the Meta-Pooling mixture (cuda_kernels/pool_mix.cu) split the work:
// blocks, shared-memory tiles and what each thread does between barriers, as host-device
// functions of (block, thread), so a CPU test (PoolMixTiles.*) can run every block and thread
// and check the kernels' indexing without a GPU. The arithmetic is core/kernels/pool_mix.h's.
//
// A block owns 16 channels x 16 columns x some rows; thread t is (tw, tc) = (t / 16, t % 16).
// 16 channels of bf16 are 32 bytes per pixel, one memory sector, and neighbouring threads read
// neighbouring shared-memory words.
#pragma once

#include <cstdint>

#include "core/hd.h"
#include "core/kernels/pool_mix.h"

namespace pmpl::kernels {

inline constexpr int kMixTileC = 16;
inline constexpr int kMixTileW = 16;
inline constexpr int kMixThreads = kMixTileC * kMixTileW;
inline constexpr int kMixHalo = kPoolMixRadius;
inline constexpr int kMixHaloW = kMixTileW + 2 * kMixHalo;
// Output rows per block of the forward and of pass 1: each thread walks one column, so the row
// stage of a row is computed once per block and reused by the 7 outputs around it; the 6 halo
// rows add 6 / 16. Shared memory: the input tile, 22 x 22 x 16 floats (31 KB; pass 1 adds 16 KB
// of reduction space).
inline constexpr int kMixScanRows = 16;
// Input rows per block of pass 2, whose tiles are dy (as float) and the winners with their halo,
// plus one row of row gradients and of d a_h terms: 47.4 KB at 12 rows (static limit 48 KB).
inline constexpr int kMixGradRows = 12;

struct MixTile {
  int64_t n, h0, w0, c0;  // image, first row, column and channel of the block's tile
};

// The grid: x over (column tile, channel tile), y over row tiles of `rows`, z over images.
PMPL_HD void mix_grid(const PoolMixShape& s, int rows, int64_t& x, int64_t& y, int64_t& z) {
  x = ((s.w + kMixTileW - 1) / kMixTileW) * ((s.c + kMixTileC - 1) / kMixTileC);
  y = (s.h + rows - 1) / rows;
  z = s.n;
}

PMPL_HD MixTile mix_tile(const PoolMixShape& s, int rows, int64_t bx, int64_t by, int64_t bz) {
  const int64_t channel_tiles = (s.c + kMixTileC - 1) / kMixTileC;
  return {bz, by * rows, (bx / channel_tiles) * kMixTileW, (bx % channel_tiles) * kMixTileC};
}

// Thread `thread`'s share of loading rows [h0, h0 + kRows) x columns [w0, w0 + kCols) x the tile's
// channels of a [N, H, W, C] tensor into a tile; at(i) gives flat element i. Outside the tensor:
// 0, which the spans keep out of every result.
template <int kRows, int kCols, class V, class Load>
PMPL_HD void mix_load_tile(V (*tile)[kCols][kMixTileC], const PoolMixShape& s, const MixTile& t, int64_t h0, int64_t w0,
                           int thread, const Load& at) {
  for (int e = thread; e < kRows * kCols * kMixTileC; e += kMixThreads) {
    const int c = e % kMixTileC, col = (e / kMixTileC) % kCols, row = e / (kMixTileC * kCols);
    const int64_t h = h0 + row, w = w0 + col, ch = t.c0 + c;
    const bool inside = h >= 0 && h < s.h && w >= 0 && w < s.w && ch < s.c;
    tile[row][col][c] = inside ? at(((t.n * s.h + h) * s.w + w) * s.c + ch) : V(0);
  }
}

// The scans' input tile: kMixScanRows output rows and their halo, from row h0 - 3, column w0 - 3.
using MixScanTile = float[kMixScanRows + 2 * kMixHalo][kMixHaloW][kMixTileC];

template <class Load>
PMPL_HD void mix_load_scan_tile(MixScanTile& tile, const PoolMixShape& s, const MixTile& t, int thread,
                                const Load& at) {
  mix_load_tile<kMixScanRows + 2 * kMixHalo, kMixHaloW>(tile, s, t, t.h0 - kMixHalo, t.w0 - kMixHalo, thread, at);
}

// An output's position: flat index o, and where its strip attention lives (a_h[n, h, c] at
// attention_h, a_w[n, w, c] at attention_w, as flat indices of [N, H, C] and [N, W, C]).
struct MixPixel {
  int64_t o, attention_h, attention_w;
};

// After the tile is loaded: thread `thread` walks its column top to bottom, keeping the row
// stages of the last 7 input rows (a ring; unrolled on the GPU, so its shifts are renames), and
// calls visit(pixel, skip, branches, centre) for every output inside the tensor: skip its input
// value, centre the row stage of its own row.
template <class Visit>
PMPL_HD void mix_scan_column(const MixScanTile& x, const PoolMixShape& s, const MixTile& t, int thread,
                             const Visit& visit) {
  const int tw = thread / kMixTileC, tc = thread % kMixTileC;
  const int64_t ow = t.w0 + tw, ch = t.c0 + tc;
  if (ow >= s.w || ch >= s.c) return;
  int clo, chi;
  pool_mix_span(ow, s.w, clo, chi);
  PoolMixRow<float> ring[2 * kMixHalo + 1] = {};
  PMPL_UNROLL
  for (int i = 0; i < kMixScanRows + 2 * kMixHalo; ++i) {
    PMPL_UNROLL
    for (int j = 0; j < 2 * kMixHalo; ++j) ring[j] = ring[j + 1];
    ring[2 * kMixHalo] = pool_mix_row<float>([&](int d) { return x[i][tw + kMixHalo + d][tc]; }, clo, chi);
    const int64_t oh = t.h0 + i - 2 * kMixHalo;
    if (i >= 2 * kMixHalo && oh < s.h) {
      int rlo, rhi;
      pool_mix_span(oh, s.h, rlo, rhi);
      const MixPixel pixel{((t.n * s.h + oh) * s.w + ow) * s.c + ch, (t.n * s.h + oh) * s.c + ch,
                           (t.n * s.w + ow) * s.c + ch};
      visit(pixel, x[i - kMixHalo][tw + kMixHalo][tc], pool_mix_column(ring, rlo, rhi), ring[kMixHalo]);
    }
  }
}

// Pass 1's winners of one output: low byte its max windows' row offsets, high byte the column
// offsets of its own row's pools.
PMPL_HD uint16_t mix_winners(const PoolMixBranches<float>& b, const PoolMixRow<float>& centre) {
  return static_cast<uint16_t>(pool_mix_pack(b.row) | (pool_mix_pack(centre.at) << 8));
}

// Pass 2's shared memory: dy (as float) and the winners of the tile's rows with their halo (from
// row h0 - 3, column w0 - 3), the row gradients of one row (arrays per window: conflict-free
// across the 16 channels of a half-warp), and one row's d a_h terms per (column, channel).
struct MixGradTiles {
  float grad[kMixGradRows + 2 * kMixHalo][kMixHaloW][kMixTileC];
  uint16_t won[kMixGradRows + 2 * kMixHalo][kMixHaloW][kMixTileC];
  float row_avg[kPoolMixWindows][kMixHaloW][kMixTileC];
  float row_max[kPoolMixWindows][kMixHaloW][kMixTileC];
  double a_h_terms[kMixTileW][kMixTileC];
};

// Where pass 2 leaves the strip attention's partial gradients (doubles): d a_h per (image, row,
// column tile, channel), d a_w per (image, row tile, column, channel); the tiles are then added
// in order (pool_mix_strip_partials).
struct MixStripPartials {
  int64_t column_tiles, row_tiles;
  PMPL_HD int64_t a_h_index(const PoolMixShape& s, int64_t n, int64_t h, int64_t tile, int64_t c) const {
    return ((n * s.h + h) * column_tiles + tile) * s.c + c;
  }
  PMPL_HD int64_t a_w_index(const PoolMixShape& s, int64_t n, int64_t tile, int64_t w, int64_t c) const {
    return ((n * row_tiles + tile) * s.w + w) * s.c + c;
  }
  PMPL_HD int64_t a_h_count(const PoolMixShape& s) const { return s.n * s.h * column_tiles * s.c; }
  PMPL_HD int64_t a_w_count(const PoolMixShape& s) const { return s.n * row_tiles * s.w * s.c; }
};
PMPL_HD MixStripPartials mix_strip_partials(const PoolMixShape& s) {
  return {(s.w + kMixTileW - 1) / kMixTileW, (s.h + kMixGradRows - 1) / kMixGradRows};
}

template <class LoadGrad, class LoadWinners>
PMPL_HD void mix_load_grad_tiles(MixGradTiles& tiles, const PoolMixShape& s, const MixTile& t, int thread,
                                 const LoadGrad& dy, const LoadWinners& winners) {
  mix_load_tile<kMixGradRows + 2 * kMixHalo, kMixHaloW>(tiles.grad, s, t, t.h0 - kMixHalo, t.w0 - kMixHalo, thread, dy);
  mix_load_tile<kMixGradRows + 2 * kMixHalo, kMixHaloW>(tiles.won, s, t, t.h0 - kMixHalo, t.w0 - kMixHalo, thread,
                                                        winners);
}

// Pass 2 goes row by row through the tile: rows i < mix_grad_rows(...) exist.
PMPL_HD int mix_grad_rows(const PoolMixShape& s, const MixTile& t) {
  return s.h - t.h0 < kMixGradRows ? static_cast<int>(s.h - t.h0) : kMixGradRows;
}

// Pass 2, row i, before a barrier: the row gradients of the row's 22 columns (tile and halo),
// thread (tw, tc) taking columns tw and tw + 16.
PMPL_HD void mix_row_grads(MixGradTiles& tiles, const PoolMixShape& s, const MixTile& t, int i, int thread,
                           const float* w) {
  const int tw = thread / kMixTileC, tc = thread % kMixTileC;
  if (t.c0 + tc >= s.c) return;
  int rlo, rhi;
  pool_mix_span(t.h0 + i, s.h, rlo, rhi);
  for (int col = tw; col < kMixHaloW; col += kMixTileW) {
    const int64_t wc = t.w0 - kMixHalo + col;
    if (wc < 0 || wc >= s.w) continue;
    const auto g = pool_mix_row_grad<float>(
        [&](int e) { return tiles.grad[i + kMixHalo + e][col][tc]; },
        [&](int e) { return tiles.won[i + kMixHalo + e][col][tc] & 0xff; }, rlo, rhi, w);
    for (int k = 0; k < kPoolMixWindows; ++k) {
      tiles.row_avg[k][col][tc] = g.avg[k];
      tiles.row_max[k][col][tc] = g.max[k];
    }
  }
}

// Pass 2, row i, after that barrier: thread (tw, tc)'s input, if inside the tensor, gathers from
// the 7 row gradients beside it and adds the skip and strip branches (x(o), a_h(i), a_w(i) load
// flat elements); visit(o, dx) gets its gradient. Its d a_h term goes to a_h_terms (0 outside)
// and its d a_w term is added to `a_w_sum`, the thread's sum over its column's rows.
template <class LoadX, class LoadAttention, class Visit>
PMPL_HD void mix_input_grad(MixGradTiles& tiles, const PoolMixShape& s, const MixTile& t, int i, int thread,
                            const float* w, const LoadX& x, const LoadAttention& a_h, const LoadAttention& a_w,
                            double& a_w_sum, const Visit& visit) {
  const int tw = thread / kMixTileC, tc = thread % kMixTileC;
  const int64_t iw = t.w0 + tw, ch = t.c0 + tc, r = t.h0 + i;
  tiles.a_h_terms[tw][tc] = 0.0;
  if (iw >= s.w || ch >= s.c) return;
  int clo, chi;
  pool_mix_span(iw, s.w, clo, chi);
  const float g = pool_mix_input_grad<float>(
      [&](int e) {
        PoolMixRowGrad<float> from;
        for (int k = 0; k < kPoolMixWindows; ++k) {
          from.avg[k] = tiles.row_avg[k][tw + kMixHalo + e][tc];
          from.max[k] = tiles.row_max[k][tw + kMixHalo + e][tc];
        }
        return from;
      },
      [&](int e) { return tiles.won[i + kMixHalo][tw + kMixHalo + e][tc] >> 8; }, clo, chi);
  const float d = tiles.grad[i + kMixHalo][tw + kMixHalo][tc];
  const int64_t o = ((t.n * s.h + r) * s.w + iw) * s.c + ch;
  const auto strip = pool_mix_strip_grad<float>(d, w[1], x(o), a_w((t.n * s.w + iw) * s.c + ch),
                                                a_h((t.n * s.h + r) * s.c + ch));
  tiles.a_h_terms[tw][tc] = strip.a_h;
  a_w_sum += strip.a_w;
  visit(o, pool_mix_dx(g, d, strip.x, w));
}

// Pass 2, row i, after the next barrier: the row's d a_h terms summed over the tile's columns in
// order, by the threads of column 0; visit(index, sum) for the partial's flat index
// (MixStripPartials::a_h_index).
template <class Visit>
PMPL_HD void mix_row_a_h(const MixGradTiles& tiles, const PoolMixShape& s, const MixTile& t, int i, int thread,
                         const Visit& visit) {
  const int tw = thread / kMixTileC, tc = thread % kMixTileC;
  if (tw != 0 || t.c0 + tc >= s.c) return;
  double sum = 0.0;
  for (int col = 0; col < kMixTileW; ++col) sum += tiles.a_h_terms[col][tc];
  visit(mix_strip_partials(s).a_h_index(s, t.n, t.h0 + i, t.w0 / kMixTileW, t.c0 + tc), sum);
}

// After the last row: thread (tw, tc)'s d a_w partial and its flat index, if inside the tensor.
template <class Visit>
PMPL_HD void mix_column_a_w(const PoolMixShape& s, const MixTile& t, int thread, double a_w_sum, const Visit& visit) {
  const int tw = thread / kMixTileC, tc = thread % kMixTileC;
  if (t.w0 + tw >= s.w || t.c0 + tc >= s.c) return;
  visit(mix_strip_partials(s).a_w_index(s, t.n, t.h0 / kMixGradRows, t.w0 + tw, t.c0 + tc), a_w_sum);
}

}  // namespace pmpl::kernels
