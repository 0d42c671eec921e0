// meta_pool_mix: the Meta-Pooling search mixture in one op (arithmetic: engine/kernels/pool_mix.h,
// whose per-element functions the CUDA kernels run). On the CPU the same arithmetic runs with
// channels innermost, so every loop vectorises: per output pixel, one scan of its 7x7 window
// updates the six pools of all channels at once.
//
// Against the separate ops and weighted_sum: no six pooled temporaries (each as large as x) and
// no separate weighted_sum pass in forward; backward reads x and dy once more instead of routing
// dy through six pooling backwards and six scaled copies.
#include <algorithm>
#include <cstdlib>
#include <limits>

#include "engine/kernels/pool_mix.h"
#if PMPL_CUDA
#include "cuda_kernels/pool_mix.h"
#endif
#include "engine/ops/op_util.h"

namespace pmpl::ops {
namespace {

using kernels::PoolMixShape;

// Per-thread accumulators of one output pixel, one entry per channel.
template <class T>
struct PixelScan {
  std::vector<T> m3, m5, m7, s3, s5, s7;
  std::vector<int32_t> t3, t5, t7;
  explicit PixelScan(int64_t c)
      : m3(c), m5(c), m7(c), s3(c), s5(c), s7(c), t3(c), t5(c), t7(c) {}

  // The six pools of output (n, oh, ow) for every channel (kernels::pool_mix_branches, with the
  // channel loop innermost).
  void run(const T* x, const PoolMixShape& s, int64_t n, int64_t oh, int64_t ow) {
    const int64_t c = s.c;
    const T neg_inf = -std::numeric_limits<T>::infinity();
    std::fill(m3.begin(), m3.end(), neg_inf);
    std::fill(m5.begin(), m5.end(), neg_inf);
    std::fill(m7.begin(), m7.end(), neg_inf);
    std::fill(s3.begin(), s3.end(), T(0));
    std::fill(s5.begin(), s5.end(), T(0));
    std::fill(s7.begin(), s7.end(), T(0));
    auto first_tap = [&](int r) {
      return kernels::pool_mix_tap(static_cast<int>(std::max<int64_t>(oh - r, 0) - oh),
                                   static_cast<int>(std::max<int64_t>(ow - r, 0) - ow));
    };
    std::fill(t3.begin(), t3.end(), first_tap(1));
    std::fill(t5.begin(), t5.end(), first_tap(2));
    std::fill(t7.begin(), t7.end(), first_tap(3));
    T *pm3 = m3.data(), *pm5 = m5.data(), *pm7 = m7.data(), *ps3 = s3.data(), *ps5 = s5.data(), *ps7 = s7.data();
    int32_t *pt3 = t3.data(), *pt5 = t5.data(), *pt7 = t7.data();
    for (int dy = -kernels::kPoolMixRadius; dy <= kernels::kPoolMixRadius; ++dy) {
      const int64_t ih = oh + dy;
      if (ih < 0 || ih >= s.h) continue;
      for (int dx = -kernels::kPoolMixRadius; dx <= kernels::kPoolMixRadius; ++dx) {
        const int64_t iw = ow + dx;
        if (iw < 0 || iw >= s.w) continue;
        const int far = std::max(std::abs(dy), std::abs(dx));
        const T* xr = x + ((n * s.h + ih) * s.w + iw) * c;
        const int32_t tap = kernels::pool_mix_tap(dy, dx);
#pragma omp simd
        for (int64_t j = 0; j < c; ++j) {
          const T v = xr[j];
          const bool wins = (v > pm7[j]) | ((v != v) & (pm7[j] == pm7[j]));
          pm7[j] = wins ? v : pm7[j];
          pt7[j] = wins ? tap : pt7[j];
          ps7[j] += v;
        }
        if (far <= 2) {
#pragma omp simd
          for (int64_t j = 0; j < c; ++j) {
            const T v = xr[j];
            const bool wins = (v > pm5[j]) | ((v != v) & (pm5[j] == pm5[j]));
            pm5[j] = wins ? v : pm5[j];
            pt5[j] = wins ? tap : pt5[j];
            ps5[j] += v;
          }
        }
        if (far <= 1) {
#pragma omp simd
          for (int64_t j = 0; j < c; ++j) {
            const T v = xr[j];
            const bool wins = (v > pm3[j]) | ((v != v) & (pm3[j] == pm3[j]));
            pm3[j] = wins ? v : pm3[j];
            pt3[j] = wins ? tap : pt3[j];
            ps3[j] += v;
          }
        }
      }
    }
    const T i3 = T(1) / T(9), i5 = T(1) / T(25), i7 = T(1) / T(49);
#pragma omp simd
    for (int64_t j = 0; j < c; ++j) {
      ps3[j] *= i3;
      ps5[j] *= i5;
      ps7[j] *= i7;
    }
  }
};

template <class T>
void forward(const T* x, const T* strip, const T* w, T* y, const PoolMixShape& s) {
#pragma omp parallel if (s.n * s.h * s.w * s.c > 16384)
  {
    PixelScan<T> scan(s.c);
#pragma omp for
    for (int64_t nh = 0; nh < s.n * s.h; ++nh) {
      const int64_t n = nh / s.h, oh = nh % s.h;
      for (int64_t ow = 0; ow < s.w; ++ow) {
        scan.run(x, s, n, oh, ow);
        const int64_t o = (nh * s.w + ow) * s.c;
        const T *xr = x + o, *sr = strip + o;
        T* yr = y + o;
        const T *m3 = scan.m3.data(), *m5 = scan.m5.data(), *m7 = scan.m7.data();
        const T *a3 = scan.s3.data(), *a5 = scan.s5.data(), *a7 = scan.s7.data();
#pragma omp simd
        for (int64_t j = 0; j < s.c; ++j) {
          // kernels::pool_mix_value, in its order.
          T v = w[0] * xr[j];
          v += w[1] * sr[j];
          v += w[2] * m3[j];
          v += w[3] * m5[j];
          v += w[4] * m7[j];
          v += w[5] * a3[j];
          v += w[6] * a5[j];
          v += w[7] * a7[j];
          yr[j] = v;
        }
      }
    }
  }
}

// Pass 1 of backward: each output's winning max taps (three bytes) and dw = sum dy * branch, the
// sums over fixed chunks of rows added in order (the same for any thread count).
template <class T>
void backward_pass1(const T* x, const T* strip, const T* gy, uint8_t* taps, double* dw, const PoolMixShape& s) {
  const int64_t rows = s.n * s.h;
  constexpr int64_t kRowsPerChunk = 4;
  const int64_t chunks = (rows + kRowsPerChunk - 1) / kRowsPerChunk;
  const Tensor partial_buffer = detail::scratch<double>(chunks * kernels::kPoolMixWeights);
  double* partial = partial_buffer.data<double>();
#pragma omp parallel if (s.n * s.h * s.w * s.c > 16384)
  {
    PixelScan<T> scan(s.c);
#pragma omp for schedule(static)
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      double acc[kernels::kPoolMixWeights] = {};
      for (int64_t nh = chunk * kRowsPerChunk; nh < std::min(rows, (chunk + 1) * kRowsPerChunk); ++nh) {
        const int64_t n = nh / s.h, oh = nh % s.h;
        for (int64_t ow = 0; ow < s.w; ++ow) {
          scan.run(x, s, n, oh, ow);
          const int64_t o = (nh * s.w + ow) * s.c;
          const T *xr = x + o, *sr = strip + o, *g = gy + o;
          uint8_t* tr = taps + 3 * o;
          double d0 = 0, d1 = 0, d2 = 0, d3 = 0, d4 = 0, d5 = 0, d6 = 0, d7 = 0;
#pragma omp simd reduction(+ : d0, d1, d2, d3, d4, d5, d6, d7)
          for (int64_t j = 0; j < s.c; ++j) {
            const double gj = static_cast<double>(g[j]);
            d0 += gj * static_cast<double>(xr[j]);
            d1 += gj * static_cast<double>(sr[j]);
            d2 += gj * static_cast<double>(scan.m3[j]);
            d3 += gj * static_cast<double>(scan.m5[j]);
            d4 += gj * static_cast<double>(scan.m7[j]);
            d5 += gj * static_cast<double>(scan.s3[j]);
            d6 += gj * static_cast<double>(scan.s5[j]);
            d7 += gj * static_cast<double>(scan.s7[j]);
          }
          for (int64_t j = 0; j < s.c; ++j) {
            tr[3 * j] = static_cast<uint8_t>(scan.t3[j]);
            tr[3 * j + 1] = static_cast<uint8_t>(scan.t5[j]);
            tr[3 * j + 2] = static_cast<uint8_t>(scan.t7[j]);
          }
          acc[0] += d0;
          acc[1] += d1;
          acc[2] += d2;
          acc[3] += d3;
          acc[4] += d4;
          acc[5] += d5;
          acc[6] += d6;
          acc[7] += d7;
        }
      }
      std::copy(acc, acc + kernels::kPoolMixWeights, partial + chunk * kernels::kPoolMixWeights);
    }
  }
  std::fill(dw, dw + kernels::kPoolMixWeights, 0.0);
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    for (int k = 0; k < kernels::kPoolMixWeights; ++k) dw[k] += partial[chunk * kernels::kPoolMixWeights + k];
  }
}

// Pass 2: dx = w[0] dy + the pools' share gathered from the covering outputs
// (kernels::pool_mix_input_grad, channels innermost).
template <class T>
void backward_pass2(const T* gy, const uint8_t* taps, const T* w, T* gx, const PoolMixShape& s) {
  const T a3 = w[5] * (T(1) / T(9)), a5 = w[6] * (T(1) / T(25)), a7 = w[7] * (T(1) / T(49));
#pragma omp parallel for if (s.n * s.h * s.w * s.c > 16384)
  for (int64_t nh = 0; nh < s.n * s.h; ++nh) {
    const int64_t n = nh / s.h, ih = nh % s.h;
    for (int64_t iw = 0; iw < s.w; ++iw) {
      T* g = gx + (nh * s.w + iw) * s.c;
      std::fill(g, g + s.c, T(0));
      for (int oy = -kernels::kPoolMixRadius; oy <= kernels::kPoolMixRadius; ++oy) {
        const int64_t oh = ih + oy;
        if (oh < 0 || oh >= s.h) continue;
        for (int ox = -kernels::kPoolMixRadius; ox <= kernels::kPoolMixRadius; ++ox) {
          const int64_t ow = iw + ox;
          if (ow < 0 || ow >= s.w) continue;
          const int far = std::max(std::abs(oy), std::abs(ox));
          const T base = a7 + (far <= 2 ? a5 : T(0)) + (far <= 1 ? a3 : T(0));
          const T w5 = far <= 2 ? w[3] : T(0), w3 = far <= 1 ? w[2] : T(0);
          const auto tap = static_cast<uint8_t>(kernels::pool_mix_tap(-oy, -ox));
          const int64_t o = ((n * s.h + oh) * s.w + ow) * s.c;
          const T* d = gy + o;
          const uint8_t* t = taps + 3 * o;
#pragma omp simd
          for (int64_t j = 0; j < s.c; ++j) {
            T from = base;
            from += t[3 * j + 2] == tap ? w[4] : T(0);
            from += t[3 * j + 1] == tap ? w5 : T(0);
            from += t[3 * j] == tap ? w3 : T(0);
            g[j] += from * d[j];
          }
        }
      }
      const T* d = gy + (nh * s.w + iw) * s.c;
#pragma omp simd
      for (int64_t j = 0; j < s.c; ++j) g[j] += w[0] * d[j];
    }
  }
}

#if PMPL_CUDA
// The same op on a GPU (cuda_kernels/pool_mix.cu): x and strip of one dtype (f32, bf16, f16),
// the weights f32, every tensor on one device.
Tensor meta_pool_mix_cuda(const Tensor& x, const Tensor& strip, const Tensor& w, const PoolMixShape& s) {
  detail::check_float("meta_pool_mix", {&x, &strip});
  PMPL_CHECK(w.device() == x.device() && w.dtype() == DType::kF32,
             "meta_pool_mix: on a GPU the weights must be f32 on {}, got {} on {}", x.device().str(),
             dtype_name(w.dtype()), w.device().str());
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  cuda::pool_mix_forward(x.dtype(), x.raw_data(), strip.raw_data(), w.data<float>(), y.raw_data(), s);
  if (needs_grad({&x, &strip, &w})) {
    record("meta_pool_mix", {&x, &strip, &w}, {y},
           [xs = x.detach(), ss = strip.detach(), ws = w.detach(), s, grad_x = x.requires_grad(),
            grad_strip = strip.requires_grad(), grad_w = w.requires_grad()](const Tensors& g) -> Tensors {
             const Device device = xs.device();
             Tensor gx = grad_x ? Tensor::empty(xs.shape(), xs.dtype(), device) : Tensor();
             Tensor gstrip = grad_strip ? Tensor::empty(xs.shape(), xs.dtype(), device) : Tensor();
             Tensor gw = grad_w ? Tensor::empty(ws.shape(), DType::kF32, device) : Tensor();
             const Tensor taps = Tensor::empty(Shape{3 * xs.numel()}, DType::kU8, device);
             const Tensor partials = Tensor::empty(Shape{cuda::pool_mix_partials(s)}, DType::kF64, device);
             cuda::pool_mix_backward(xs.dtype(), xs.raw_data(), ss.raw_data(), ws.data<float>(), g[0].raw_data(),
                                     grad_x ? gx.raw_data() : nullptr, grad_strip ? gstrip.raw_data() : nullptr,
                                     grad_w ? gw.data<float>() : nullptr, taps.data<uint8_t>(),
                                     partials.data<double>(), s);
             return {gx, gstrip, gw};
           });
  }
  return y;
}
#endif

}  // namespace

Tensor meta_pool_mix(const Tensor& x, const Tensor& strip, const Tensor& w) {
#if PMPL_CUDA
  if (x.is_cuda()) {
    detail::check_rank("meta_pool_mix", "x", x, 4, "N, H, W, C");
    PMPL_CHECK(strip.shape() == x.shape() && w.rank() == 1 && w.dim(0) == kernels::kPoolMixWeights,
               "meta_pool_mix: strip must be shaped as x {} and w [8], got {} and {}", x.shape().str(),
               strip.shape().str(), w.shape().str());
    return meta_pool_mix_cuda(x, strip, w, PoolMixShape{x.dim(0), x.dim(1), x.dim(2), x.dim(3)});
  }
#endif
  detail::check_cpu_float("meta_pool_mix", {&x, &strip, &w});
  detail::check_rank("meta_pool_mix", "x", x, 4, "N, H, W, C");
  PMPL_CHECK(strip.shape() == x.shape(), "meta_pool_mix: the strip branch {} must be shaped as x {}",
             strip.shape().str(), x.shape().str());
  PMPL_CHECK(w.rank() == 1 && w.dim(0) == kernels::kPoolMixWeights, "meta_pool_mix: weights must be [{}], got {}",
             kernels::kPoolMixWeights, w.shape().str());
  const PoolMixShape s{x.dim(0), x.dim(1), x.dim(2), x.dim(3)};
  Tensor y = empty_like(x);
  dispatch_float(x.dtype(), "meta_pool_mix", [&](auto tag) {
    using T = decltype(tag);
    forward(x.data<T>(), strip.data<T>(), w.data<T>(), y.data<T>(), s);
  });
  if (needs_grad({&x, &strip, &w})) {
    record("meta_pool_mix", {&x, &strip, &w}, {y},
           [xs = x.detach(), ss = strip.detach(), ws = w.detach(), s, grad_x = x.requires_grad(),
            grad_strip = strip.requires_grad(), grad_w = w.requires_grad()](const Tensors& g) -> Tensors {
             Tensor gx, gstrip, gw;
             dispatch_float(xs.dtype(), "meta_pool_mix", [&](auto tag) {
               using T = decltype(tag);
               const Tensor taps = detail::scratch<uint8_t>(3 * xs.numel());
               double dw[kernels::kPoolMixWeights];
               backward_pass1(xs.data<T>(), ss.data<T>(), g[0].data<T>(), taps.data<uint8_t>(), dw, s);
               if (grad_w) {
                 gw = empty_like(ws);
                 for (int k = 0; k < kernels::kPoolMixWeights; ++k) gw.data<T>()[k] = static_cast<T>(dw[k]);
               }
               if (grad_x) {
                 gx = empty_like(xs);
                 backward_pass2(g[0].data<T>(), taps.data<uint8_t>(), ws.data<T>(), gx.data<T>(), s);
               }
             });
             if (grad_strip) gstrip = scale(g[0], ws.to(DType::kF64).to_vector<double>()[1]);
             return {gx, gstrip, gw};
           });
  }
  return y;
}

}  // namespace pmpl::ops
