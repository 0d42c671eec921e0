// The Meta-Pooling mixture's CPU forward (engine/ops/pool_mix_cpu.h).
#include "engine/ops/pool_mix_cpu.h"

namespace pmpl::ops::pool_mix_cpu {

template <class T>
void forward(const T* x, const StripAttention<T>& att, const T* w, T* y, const PoolMixShape& s) {
  scan_outputs(x, s, [&](int64_t, int64_t n, int64_t oh, int64_t ow, const PixelBranches<T>& b, const RowPools<T>&) {
    const int64_t o = ((n * s.h + oh) * s.w + ow) * s.c;
    const T *xr = x + o, *ah = att.row(s, n, oh), *aw = att.column(s, n, ow);
    const T *m3 = b.max[0].data(), *m5 = b.max[1].data(), *m7 = b.max[2].data();
    const T *a3 = b.avg[0].data(), *a5 = b.avg[1].data(), *a7 = b.avg[2].data();
    T* yr = y + o;
#pragma omp simd
    for (int64_t j = 0; j < s.c; ++j) {
      // kernels::pool_mix_value, in its order (the strip branch as kernels::pool_mix_strip).
      T v = w[0] * xr[j];
      v += w[1] * ((xr[j] * aw[j]) * ah[j]);
      v += w[2] * m3[j];
      v += w[3] * m5[j];
      v += w[4] * m7[j];
      v += w[5] * a3[j];
      v += w[6] * a5[j];
      v += w[7] * a7[j];
      yr[j] = v;
    }
  });
}

template void forward<float>(const float*, const StripAttention<float>&, const float*, float*, const PoolMixShape&);
template void forward<double>(const double*, const StripAttention<double>&, const double*, double*, const PoolMixShape&);

}  // namespace pmpl::ops::pool_mix_cpu
