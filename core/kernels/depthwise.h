// Depthwise convolution's per-element arithmetic (NHWC, weight transposed to [k, k, C]), written
// once for the CPU op (engine/ops/depthwise_conv.cpp, which runs it with channels innermost) and
// the CUDA kernels (cuda_kernels/depthwise.cu, one thread per group of V channels). The sums run
// in the same order in both (taps row-major; the weight gradient over rows in order, in fixed chunks), so
// the per-element functions equal the CPU op bit for bit where the compiler does not contract
// multiply-adds.
#pragma once

#include <cstdint>

#include "core/hd.h"
#include "core/kernels/storage.h"

namespace pmpl::kernels {

struct DwShape {
  int64_t n, h, w, c, k, ho, wo;
  int stride, padding;
};

// The output index covering input `i` at window tap `t` along one axis, or -1.
PMPL_HD int64_t dw_covering_output(int64_t i, int64_t t, int stride, int padding, int64_t outputs) {
  const int64_t u = i + padding - t;
  if (u < 0 || u % stride != 0) return -1;
  const int64_t o = u / stride;
  return o < outputs ? o : -1;
}

// acc[j] += a[ai + j] * b[bi + j] for V channels (one 16-byte load of each on a GPU).
template <int V, class S, class T>
PMPL_HD void dw_add_products(const S* a, int64_t ai, const S* b, int64_t bi, T (&acc)[V]) {
  T av[V], bv[V];
  load_channels<V>(a, ai, av);
  load_channels<V>(b, bi, bv);
  for (int j = 0; j < V; ++j) acc[j] += av[j] * bv[j];
}

// S: the storage type of x and wt (T = compute_t<S> does the arithmetic). Each function
// computes V consecutive channels c .. c + V - 1 (the CUDA kernels' vector width; c and C
// multiples of V), each channel's sum in the same order as for V = 1.
template <int V, class S, class T = compute_t<S>>
PMPL_HD void dw_outputs(const S* x, const S* wt, const DwShape& g, int64_t n, int64_t oh, int64_t ow, int64_t c,
                        T (&y)[V]) {
  for (int j = 0; j < V; ++j) y[j] = T(0);
  for (int64_t ki = 0; ki < g.k; ++ki) {
    const int64_t ih = oh * g.stride - g.padding + ki;
    if (ih < 0 || ih >= g.h) continue;
    for (int64_t kj = 0; kj < g.k; ++kj) {
      const int64_t iw = ow * g.stride - g.padding + kj;
      if (iw < 0 || iw >= g.w) continue;
      dw_add_products<V>(x, ((n * g.h + ih) * g.w + iw) * g.c + c, wt, (ki * g.k + kj) * g.c + c, y);
    }
  }
}

template <class S, class T = compute_t<S>>
PMPL_HD T dw_output(const S* x, const S* wt, const DwShape& g, int64_t n, int64_t oh, int64_t ow, int64_t c) {
  T y[1];
  dw_outputs<1>(x, wt, g, n, oh, ow, c, y);
  return y[0];
}

template <int V, class S, class T = compute_t<S>>
PMPL_HD void dw_input_grads(const S* gy, const S* wt, const DwShape& g, int64_t n, int64_t ih, int64_t iw, int64_t c,
                            T (&d)[V]) {
  for (int j = 0; j < V; ++j) d[j] = T(0);
  for (int64_t ki = 0; ki < g.k; ++ki) {
    const int64_t oh = dw_covering_output(ih, ki, g.stride, g.padding, g.ho);
    if (oh < 0) continue;
    for (int64_t kj = 0; kj < g.k; ++kj) {
      const int64_t ow = dw_covering_output(iw, kj, g.stride, g.padding, g.wo);
      if (ow < 0) continue;
      dw_add_products<V>(gy, ((n * g.ho + oh) * g.wo + ow) * g.c + c, wt, (ki * g.k + kj) * g.c + c, d);
    }
  }
}

template <class S, class T = compute_t<S>>
PMPL_HD T dw_input_grad(const S* gy, const S* wt, const DwShape& g, int64_t n, int64_t ih, int64_t iw, int64_t c) {
  T d[1];
  dw_input_grads<1>(gy, wt, g, n, ih, iw, c, d);
  return d[0];
}

// The weight gradient's chunks: rows (n, oh) are cut into this many pieces, each summed apart,
// then the pieces added in order. At least 64 (the CPU's threads), and about one per 32 rows on
// large batches so that a GPU gets k * k * C * chunks threads of ~32 rows each rather than a few
// long serial loops (batch 256 at 112 px: 896 chunks).
PMPL_HD int64_t dw_weight_chunks(const DwShape& g) {
  const int64_t rows = g.n * g.ho;
  if (rows < 64) return rows;
  const int64_t chunks = rows / 32 > 64 ? rows / 32 : 64;
  return chunks < 65535 ? chunks : 65535;  // a CUDA grid's y dimension
}

// Chunk `chunk`'s share of d weight[tap = ki * k + kj][c .. c + V - 1]: sums over its rows and
// all output columns of dy * x.
template <int V, class S, class T = compute_t<S>>
PMPL_HD void dw_weight_grad_chunks(const S* x, const S* gy, const DwShape& g, int64_t chunk, int64_t ki, int64_t kj,
                                   int64_t c, T (&acc)[V]) {
  const int64_t rows = g.n * g.ho, chunks = dw_weight_chunks(g);
  for (int j = 0; j < V; ++j) acc[j] = T(0);
  for (int64_t nh = chunk * rows / chunks; nh < (chunk + 1) * rows / chunks; ++nh) {
    const int64_t n = nh / g.ho, oh = nh % g.ho;
    const int64_t ih = oh * g.stride - g.padding + ki;
    if (ih < 0 || ih >= g.h) continue;
    for (int64_t ow = 0; ow < g.wo; ++ow) {
      const int64_t iw = ow * g.stride - g.padding + kj;
      if (iw < 0 || iw >= g.w) continue;
      dw_add_products<V>(gy, (nh * g.wo + ow) * g.c + c, x, ((n * g.h + ih) * g.w + iw) * g.c + c, acc);
    }
  }
}

template <class S, class T = compute_t<S>>
PMPL_HD T dw_weight_grad_chunk(const S* x, const S* gy, const DwShape& g, int64_t chunk, int64_t ki, int64_t kj,
                               int64_t c) {
  T acc[1];
  dw_weight_grad_chunks<1>(x, gy, g, chunk, ki, kj, c, acc);
  return acc[0];
}

}  // namespace pmpl::kernels
