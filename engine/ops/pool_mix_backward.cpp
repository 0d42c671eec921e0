// The Meta-Pooling mixture's CPU backward: pass 1 (winners, dw) and pass 2 (dx), as
// engine/ops/pool_mix_cpu.h describes them.
#include "engine/ops/pool_mix_cpu.h"
#include "engine/ops/op_util.h"

namespace pmpl::ops::pool_mix_cpu {

template <class T>
void backward_pass1(const T* x, const StripAttention<T>& att, const T* gy, uint16_t* winners, double* dw,
                    const PoolMixShape& s) {
  const int64_t items = scan_items(s);
  const Tensor partial_buffer = detail::scratch<double>(items * kPoolMixWeights);
  double* partial = partial_buffer.data<double>();
  std::fill_n(partial, items * kPoolMixWeights, 0.0);
  scan_outputs(x, s, [&](int64_t item, int64_t n, int64_t oh, int64_t ow, const PixelBranches<T>& b,
                         const RowPools<T>& centre) {
    const int64_t o = ((n * s.h + oh) * s.w + ow) * s.c;
    const T *xr = x + o, *g = gy + o, *ah = att.row(s, n, oh), *aw = att.column(s, n, ow);
    double d0 = 0, d1 = 0, d2 = 0, d3 = 0, d4 = 0, d5 = 0, d6 = 0, d7 = 0;
#pragma omp simd reduction(+ : d0, d1, d2, d3, d4, d5, d6, d7)
    for (int64_t j = 0; j < s.c; ++j) {
      const double gj = static_cast<double>(g[j]);
      d0 += gj * static_cast<double>(xr[j]);
      d1 += gj * static_cast<double>((xr[j] * aw[j]) * ah[j]);
      d2 += gj * static_cast<double>(b.max[0][j]);
      d3 += gj * static_cast<double>(b.max[1][j]);
      d4 += gj * static_cast<double>(b.max[2][j]);
      d5 += gj * static_cast<double>(b.avg[0][j]);
      d6 += gj * static_cast<double>(b.avg[1][j]);
      d7 += gj * static_cast<double>(b.avg[2][j]);
    }
    const double d[kPoolMixWeights] = {d0, d1, d2, d3, d4, d5, d6, d7};
    for (int k = 0; k < kPoolMixWeights; ++k) partial[item * kPoolMixWeights + k] += d[k];
    uint16_t* wr = winners + o;
    const int32_t *r3 = b.row[0].data(), *r5 = b.row[1].data(), *r7 = b.row[2].data();
    const int32_t *c3 = centre.at[0].data() + ow * s.c, *c5 = centre.at[1].data() + ow * s.c;
    const int32_t* c7 = centre.at[2].data() + ow * s.c;
#pragma omp simd
    for (int64_t j = 0; j < s.c; ++j) {
      wr[j] = static_cast<uint16_t>(kernels::pool_mix_pack(r3[j], r5[j], r7[j]) |
                                    (kernels::pool_mix_pack(c3[j], c5[j], c7[j]) << 8));
    }
  });
  std::fill(dw, dw + kPoolMixWeights, 0.0);
  for (int64_t item = 0; item < items; ++item) {
    for (int k = 0; k < kPoolMixWeights; ++k) dw[k] += partial[item * kPoolMixWeights + k];
  }
}

template <class T>
void backward_pass2(const StripAttention<T>& att, const T* gy, const uint16_t* winners, const T* w, T* gx,
                    const PoolMixShape& s) {
  const int64_t c = s.c;
#pragma omp parallel if (s.n * s.h * s.w * s.c > 16384)
  {
    std::array<std::vector<T>, kPoolMixWindows> avg, max;
    resize_each(s.w * c, avg, max);
#pragma omp for schedule(static)
    for (int64_t nr = 0; nr < s.n * s.h; ++nr) {
      const int64_t n = nr / s.h, r = nr % s.h;
      int lo, hi;
      kernels::pool_mix_span(r, s.h, lo, hi);
      for (int64_t col = 0; col < s.w; ++col) {
        for (int k = 0; k < kPoolMixWindows; ++k) {
          std::fill_n(avg[k].data() + col * c, c, T(0));
          std::fill_n(max[k].data() + col * c, c, T(0));
        }
        for (int e = lo; e <= hi; ++e) {
          const int64_t o = ((n * s.h + r + e) * s.w + col) * c;
          const T* d = gy + o;
          const uint16_t* won = winners + o;
          const int far = std::abs(e);
          for (int k = 0; k < kPoolMixWindows; ++k) {
            if (far > k + 1) continue;
            T *pa = avg[k].data() + col * c, *pm = max[k].data() + col * c;
#pragma omp simd
            for (int64_t j = 0; j < c; ++j) {
              pa[j] += d[j];
              pm[j] += kernels::pool_mix_unpack(won[j] & 0xff, k) == -e ? d[j] : T(0);
            }
          }
        }
        for (int k = 0; k < kPoolMixWindows; ++k) {
          const T a = w[5 + k] * inverse_area<T>(k), m = w[2 + k];
          T *pa = avg[k].data() + col * c, *pm = max[k].data() + col * c;
#pragma omp simd
          for (int64_t j = 0; j < c; ++j) {
            pa[j] = a * pa[j];
            pm[j] = m * pm[j];
          }
        }
      }
      for (int64_t iw = 0; iw < s.w; ++iw) {
        const int64_t i = (nr * s.w + iw) * c;
        T* g = gx + i;
        std::fill_n(g, c, T(0));
        int clo, chi;
        kernels::pool_mix_span(iw, s.w, clo, chi);
        for (int e = clo; e <= chi; ++e) {
          const int far = std::abs(e);
          for (int k = 0; k < kPoolMixWindows; ++k) {
            if (far > k + 1) continue;  // the function adds +0 there: the same bits (g is never -0)
            const T* pa = avg[k].data() + (iw + e) * c;
#pragma omp simd
            for (int64_t j = 0; j < c; ++j) g[j] += pa[j];
          }
          const uint16_t* won = winners + i + e * c;
          for (int k = 0; k < kPoolMixWindows; ++k) {
            const T* pm = max[k].data() + (iw + e) * c;
#pragma omp simd
            for (int64_t j = 0; j < c; ++j) g[j] += kernels::pool_mix_unpack(won[j] >> 8, k) == -e ? pm[j] : T(0);
          }
        }
        const T *d = gy + i, *ah = att.row(s, n, r), *aw = att.column(s, n, iw);
#pragma omp simd
        for (int64_t j = 0; j < c; ++j) {
          // kernels::pool_mix_dx with kernels::pool_mix_strip_grad's x term.
          g[j] = (g[j] + w[0] * d[j]) + ((w[1] * d[j]) * ah[j]) * aw[j];
        }
      }
    }
  }
}

template void backward_pass1<float>(const float*, const StripAttention<float>&, const float*, uint16_t*, double*,
                                    const PoolMixShape&);
template void backward_pass1<double>(const double*, const StripAttention<double>&, const double*, uint16_t*, double*,
                                     const PoolMixShape&);
template void backward_pass2<float>(const StripAttention<float>&, const float*, const uint16_t*, const float*, float*,
                                    const PoolMixShape&);
template void backward_pass2<double>(const StripAttention<double>&, const double*, const uint16_t*, const double*,
                                     double*, const PoolMixShape&);

}  // namespace pmpl::ops::pool_mix_cpu
