// The strip attention's gradients through the Meta-Pooling mixture, on the CPU
// (engine/ops/pool_mix_cpu.h).
#include "engine/ops/pool_mix_cpu.h"

namespace pmpl::ops::pool_mix_cpu {

template <class T>
void strip_attention_grads(const T* x, const StripAttention<T>& att, const T* gy, T w1, T* ga_h, T* ga_w,
                           const PoolMixShape& s) {
  const int64_t c = s.c;
#pragma omp parallel if (s.n * s.h * s.w * s.c > 16384)
  {
    std::vector<double> sum_h(static_cast<size_t>(c)), sum_w(static_cast<size_t>(s.w * c));
#pragma omp for schedule(static)
    for (int64_t n = 0; n < s.n; ++n) {
      std::fill(sum_w.begin(), sum_w.end(), 0.0);
      for (int64_t h = 0; h < s.h; ++h) {
        std::fill(sum_h.begin(), sum_h.end(), 0.0);
        const T* ah = att.row(s, n, h);
        for (int64_t w = 0; w < s.w; ++w) {
          const int64_t o = ((n * s.h + h) * s.w + w) * c;
          const T *xr = x + o, *d = gy + o, *aw = att.column(s, n, w);
          double* sw = sum_w.data() + w * c;
#pragma omp simd
          for (int64_t j = 0; j < c; ++j) {
            const auto g = kernels::pool_mix_strip_grad(d[j], w1, xr[j], aw[j], ah[j]);
            sum_h[static_cast<size_t>(j)] += static_cast<double>(g.a_h);
            sw[j] += static_cast<double>(g.a_w);
          }
        }
        for (int64_t j = 0; j < c; ++j) ga_h[(n * s.h + h) * c + j] = static_cast<T>(sum_h[static_cast<size_t>(j)]);
      }
      for (int64_t j = 0; j < s.w * c; ++j) ga_w[n * s.w * c + j] = static_cast<T>(sum_w[static_cast<size_t>(j)]);
    }
  }
}

template void strip_attention_grads<float>(const float*, const StripAttention<float>&, const float*, float, float*,
                                           float*, const PoolMixShape&);
template void strip_attention_grads<double>(const double*, const StripAttention<double>&, const double*, double, double*,
                                            double*, const PoolMixShape&);

}  // namespace pmpl::ops::pool_mix_cpu
