#include "models/deploy/int8_kernels.h"

#include <algorithm>
#include <cmath>

#include "engine/blas.h"
#include "engine/error.h"

namespace pmpl::deploy {

QuantParams choose_params(double lo, double hi) {
  lo = std::min(lo, 0.0);
  hi = std::max(hi, 0.0);
  QuantParams q;
  if (hi - lo < 1e-12) return q;  // an all-zero tensor: any scale represents it
  q.scale = static_cast<float>((hi - lo) / 255.0);
  q.zero_point = std::clamp(static_cast<int32_t>(std::lround(-lo / q.scale)), 0, 255);
  return q;
}

Requantize make_requantize(const std::vector<float>& weight_scale, const std::vector<float>& bias, QuantParams in,
                           QuantParams out, Clamp clamp) {
  PMPL_ASSERT(weight_scale.size() == bias.size(), "requantize: {} scales for {} biases", weight_scale.size(),
              bias.size());
  Requantize r;
  r.zero = out.zero_point;
  r.lo = clamp == Clamp::kNone ? 0 : out.zero_point;
  r.hi = clamp == Clamp::kReLU6
             ? std::min<int32_t>(255, out.zero_point + static_cast<int32_t>(std::lround(6.0 / out.scale)))
             : 255;
  for (size_t c = 0; c < bias.size(); ++c) {
    const double acc_scale = static_cast<double>(in.scale) * weight_scale[c];
    r.bias.push_back(static_cast<int32_t>(std::lround(bias[c] / acc_scale)));
    r.multiplier.push_back(static_cast<float>(acc_scale / out.scale));
  }
  return r;
}

Dequantize make_dequantize(const std::vector<float>& weight_scale, const std::vector<float>& bias, QuantParams in) {
  PMPL_ASSERT(weight_scale.size() == bias.size(), "dequantize: {} scales for {} biases", weight_scale.size(),
              bias.size());
  Dequantize d{{}, bias};
  for (float s : weight_scale) d.scale.push_back(in.scale * s);
  return d;
}

void quantize_u8(const float* x, int64_t n, QuantParams q, uint8_t* out) {
  const float inv = 1.0f / q.scale;
#pragma omp parallel for simd if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i] * inv;
    const int32_t r = static_cast<int32_t>(v + (v >= 0.0f ? 0.5f : -0.5f)) + q.zero_point;
    out[i] = static_cast<uint8_t>(std::clamp(r, 0, 255));
  }
}

void dequantize_u8(const uint8_t* x, int64_t n, QuantParams q, float* out) {
#pragma omp parallel for simd if (n > 65536)
  for (int64_t i = 0; i < n; ++i) out[i] = q.scale * static_cast<float>(static_cast<int32_t>(x[i]) - q.zero_point);
}

namespace {

// One row of outputs requantised (with `bias`, or none) or dequantised. Plain functions whose
// operands are all locals: in a lambda that reads them through its captures, every uint8 store
// may alias them (a char type aliases anything), and GCC left the loop scalar, reloading the
// zero point and clamps per element (measured: requantisation took more time than the GEMM).
template <bool kBias>
void requantize_row(const int32_t* acc, const int32_t* bias, const float* mult, int64_t n, int32_t zero, int32_t lo,
                    int32_t hi, uint8_t* out) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) {
    const float v = static_cast<float>(kBias ? acc[j] + bias[j] : acc[j]) * mult[j];
    int32_t q = static_cast<int32_t>(v + (v >= 0.0f ? 0.5f : -0.5f)) + zero;
    q = q < lo ? lo : q;
    out[j] = static_cast<uint8_t>(q > hi ? hi : q);
  }
}

void dequantize_row(const int32_t* acc, const float* scale, const float* bias, int64_t n, float* out) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) out[j] = static_cast<float>(acc[j]) * scale[j] + bias[j];
}

// The 1x1 conv's exact int32 GEMM, then `emit(acc_row, i)` for each of the m output rows.
template <class Emit>
void conv1x1_acc(const uint8_t* x, int64_t m, int64_t k, int32_t x_zero, const int8_t* weight, int64_t n,
                 std::vector<int32_t>& scratch, Emit emit) {
  scratch.resize(static_cast<size_t>(m * n));
  blas::gemm_u8s8s32(m, n, k, x, k, static_cast<uint8_t>(x_zero), weight, k, scratch.data(), n);
#pragma omp parallel for if (m * n > 65536)
  for (int64_t i = 0; i < m; ++i) emit(static_cast<const int32_t*>(scratch.data() + i * n), i);
}

}  // namespace

void conv1x1_u8(const uint8_t* x, int64_t m, int64_t k, int32_t x_zero, const int8_t* weight, int64_t n,
                const Requantize& r, std::vector<int32_t>& scratch, uint8_t* out) {
  conv1x1_acc(x, m, k, x_zero, weight, n, scratch, [&](const int32_t* acc, int64_t i) {
    requantize_row<true>(acc, r.bias.data(), r.multiplier.data(), n, r.zero, r.lo, r.hi, out + i * n);
  });
}

void conv1x1_u8_f32(const uint8_t* x, int64_t m, int64_t k, int32_t x_zero, const int8_t* weight, int64_t n,
                    const Dequantize& d, std::vector<int32_t>& scratch, float* out) {
  conv1x1_acc(x, m, k, x_zero, weight, n, scratch, [&](const int32_t* acc, int64_t i) {
    dequantize_row(acc, d.scale.data(), d.bias.data(), n, out + i * n);
  });
}

namespace {

// The depthwise conv's accumulation, shared by its two outputs: for each output pixel (flat index
// p), `emit(acc, p)` with acc[ch] = init[ch] + sum over the window of (x - zero) * tap.
template <class Emit>
void depthwise_acc(const uint8_t* x, int64_t batch, int64_t h, int64_t w, int64_t c, int32_t x_zero,
                   const int16_t* taps, int k, int stride, const int32_t* init, Emit emit) {
  const int pad = k / 2;
  const int64_t ho = (h + 2 * pad - k) / stride + 1, wo = (w + 2 * pad - k) / stride + 1;
  const int16_t zero16 = static_cast<int16_t>(x_zero);
#pragma omp parallel
  {
    std::vector<int32_t> acc(static_cast<size_t>(c));
#pragma omp for
    for (int64_t row = 0; row < batch * ho; ++row) {
      const int64_t b = row / ho, oy = row % ho;
      for (int64_t ox = 0; ox < wo; ++ox) {
        if (init) {
          std::copy(init, init + c, acc.begin());
        } else {
          std::fill(acc.begin(), acc.end(), 0);
        }
        int32_t* a = acc.data();
        for (int ky = 0; ky < k; ++ky) {
          const int64_t iy = oy * stride + ky - pad;
          if (iy < 0 || iy >= h) continue;
          for (int kx = 0; kx < k; ++kx) {
            const int64_t ix = ox * stride + kx - pad;
            if (ix < 0 || ix >= w) continue;  // padding is the real 0: (zero - zero) * w adds nothing
            const uint8_t* px = x + ((b * h + iy) * w + ix) * c;
            const int16_t* t = taps + (ky * k + kx) * c;
#pragma omp simd
            for (int64_t ch = 0; ch < c; ++ch) {
              // |x - zero| <= 255 and |tap| <= 127: the product fits int16, so it is a 16-bit
              // multiply (twice the lanes of a 32-bit one, at half its latency) widened to add.
              a[ch] += static_cast<int16_t>(static_cast<int16_t>(px[ch] - zero16) * t[ch]);
            }
          }
        }
        emit(static_cast<const int32_t*>(a), (b * ho + oy) * wo + ox);
      }
    }
  }
}

}  // namespace

void depthwise_u8(const uint8_t* x, int64_t batch, int64_t h, int64_t w, int64_t c, int32_t x_zero,
                  const int16_t* taps, int k, int stride, const Requantize& r, uint8_t* out) {
  depthwise_acc(x, batch, h, w, c, x_zero, taps, k, stride, r.bias.data(), [&](const int32_t* a, int64_t p) {
    requantize_row<false>(a, nullptr, r.multiplier.data(), c, r.zero, r.lo, r.hi, out + p * c);
  });
}

void depthwise_u8_f32(const uint8_t* x, int64_t batch, int64_t h, int64_t w, int64_t c, int32_t x_zero,
                      const int16_t* taps, int k, int stride, const Dequantize& d, float* out) {
  depthwise_acc(x, batch, h, w, c, x_zero, taps, k, stride, nullptr, [&](const int32_t* a, int64_t p) {
    dequantize_row(a, d.scale.data(), d.bias.data(), c, out + p * c);
  });
}

void add_u8(const uint8_t* a, QuantParams qa, const uint8_t* b, QuantParams qb, int64_t n, QuantParams out_q,
            uint8_t* out) {
  const float sa = qa.scale / out_q.scale, sb = qb.scale / out_q.scale;
#pragma omp parallel for simd if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const float v = sa * static_cast<float>(static_cast<int32_t>(a[i]) - qa.zero_point) +
                    sb * static_cast<float>(static_cast<int32_t>(b[i]) - qb.zero_point);
    const int32_t r = static_cast<int32_t>(v + (v >= 0.0f ? 0.5f : -0.5f)) + out_q.zero_point;
    out[i] = static_cast<uint8_t>(std::clamp(r, 0, 255));
  }
}

void global_avg_pool_u8(const uint8_t* x, int64_t batch, int64_t hw, int64_t c, QuantParams in_q, QuantParams out_q,
                        uint8_t* out) {
  const float scale = in_q.scale / (out_q.scale * static_cast<float>(hw));
  std::vector<int32_t> sum(static_cast<size_t>(c));
  for (int64_t b = 0; b < batch; ++b) {
    std::fill(sum.begin(), sum.end(), 0);
    for (int64_t p = 0; p < hw; ++p) {
      const uint8_t* px = x + (b * hw + p) * c;
#pragma omp simd
      for (int64_t ch = 0; ch < c; ++ch) sum[ch] += px[ch];
    }
    for (int64_t ch = 0; ch < c; ++ch) {
      const float v = static_cast<float>(sum[ch] - in_q.zero_point * hw) * scale;
      const int32_t r = static_cast<int32_t>(v + (v >= 0.0f ? 0.5f : -0.5f)) + out_q.zero_point;
      out[b * c + ch] = static_cast<uint8_t>(std::clamp(r, 0, 255));
    }
  }
}

}  // namespace pmpl::deploy
