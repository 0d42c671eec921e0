#include "models/deploy/int8_kernels.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "engine/blas.h"
#include "engine/error.h"
#include "models/deploy/int8_vector.h"

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

namespace {

// Rows of plain operands, so that the loops vectorise (see emit_u8 below).
void quantize_row(const float* x, int64_t n, float inv, int32_t zero, uint8_t* out) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = round_to_u8(x[i] * inv, zero, 0, 255);
}

void add_row(const uint8_t* a, float sa, int32_t za, const uint8_t* b, float sb, int32_t zb, int64_t n, int32_t zero,
             uint8_t* out) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    out[i] = round_to_u8(sa * static_cast<float>(a[i] - za) + sb * static_cast<float>(b[i] - zb), zero, 0, 255);
  }
}

// row(begin, count) over [0, n) in chunks, in parallel where n is large enough to pay for it.
template <class Row>
void in_chunks(int64_t n, Row row) {
  constexpr int64_t kChunk = 16384;
#pragma omp parallel for if (n > 4 * kChunk)
  for (int64_t i = 0; i < n; i += kChunk) row(i, std::min(kChunk, n - i));
}

}  // namespace

void quantize_u8(const float* x, int64_t n, QuantParams q, uint8_t* out) {
  const float inv = 1.0f / q.scale;
  in_chunks(n, [&](int64_t i, int64_t count) { quantize_row(x + i, count, inv, q.zero_point, out + i); });
}

void dequantize_u8(const uint8_t* x, int64_t n, QuantParams q, float* out) {
#pragma omp parallel for simd if (n > 65536)
  for (int64_t i = 0; i < n; ++i) out[i] = q.scale * static_cast<float>(static_cast<int32_t>(x[i]) - q.zero_point);
}

std::vector<Int8Isa> available_int8_isas() {
  std::vector<Int8Isa> isas{Int8Isa::kPortable};
  if (avx2::available()) isas.push_back(Int8Isa::kAvx2);
  if (avx512::available()) isas.push_back(Int8Isa::kAvx512Vnni);
  return isas;
}

Int8Isa best_int8_isa() {
  static const Int8Isa isa = blas::reference_requested() ? Int8Isa::kPortable : available_int8_isas().back();
  return isa;
}

const char* int8_isa_name(Int8Isa isa) {
  switch (isa) {
    case Int8Isa::kAvx2: return "avx2";
    case Int8Isa::kAvx512Vnni: return "avx512-vnni";
    default: return "portable";
  }
}

namespace {

int64_t padded16(int64_t n) { return (n + 15) / 16 * 16; }

}  // namespace

Int8Output make_int8_output(int64_t channels, const Requantize* r, const Dequantize* d) {
  PMPL_ASSERT((r == nullptr) != (d == nullptr), "an int8 output is requantised or dequantised");
  const size_t n = static_cast<size_t>(channels), padded = static_cast<size_t>(padded16(channels));
  Int8Output o;
  o.u8 = r != nullptr;
  o.offset.assign(padded, 0);
  o.scale.assign(padded, 0.0f);
  o.bias.assign(padded, 0.0f);
  if (r) {
    PMPL_ASSERT(r->bias.size() == n && r->multiplier.size() == n, "requantize of {} channels for {}", r->bias.size(),
                n);
    std::copy(r->bias.begin(), r->bias.end(), o.offset.begin());
    std::copy(r->multiplier.begin(), r->multiplier.end(), o.scale.begin());
    o.zero = r->zero;
    o.lo = r->lo;
    o.hi = r->hi;
  } else {
    PMPL_ASSERT(d->scale.size() == n && d->bias.size() == n, "dequantize of {} channels for {}", d->scale.size(), n);
    std::copy(d->scale.begin(), d->scale.end(), o.scale.begin());
    std::copy(d->bias.begin(), d->bias.end(), o.bias.begin());
  }
  return o;
}

PackedPointwise::PackedPointwise(const int8_t* weight, int64_t n, int64_t k, int32_t x_zero, Int8Output out)
    : n_(n), k_(k), out_(std::move(out)) {
  PMPL_ASSERT(k > 0 && k < (int64_t{1} << 16), "a 1x1 conv of {} inputs could overflow int32", k);
  PMPL_ASSERT(static_cast<int64_t>(out_.offset.size()) == padded16(n), "{} offsets for {} channels",
              out_.offset.size(), n);
  const int64_t groups = k_groups();
  bytes_.assign(static_cast<size_t>(blocks() * groups * 64 + 63), 0);
  int8_t* packed = const_cast<int8_t*>(weights());
  for (int64_t j = 0; j < n; ++j) {
    int32_t sum = 0;
    for (int64_t p = 0; p < k; ++p) {
      const int8_t v = weight[j * k + p];
      sum += v;
      packed[((j / 16) * groups + p / 4) * 64 + (j % 16) * 4 + p % 4] = v;
    }
    out_.offset[static_cast<size_t>(j)] -= x_zero * sum;
  }
}

const int8_t* PackedPointwise::aligned(const int8_t* p) {
  const auto at = reinterpret_cast<uintptr_t>(p);
  return p + ((64 - at % 64) % 64);
}

PackedDepthwise::PackedDepthwise(const int8_t* weight, int64_t channels_, int kernel_, int stride_, int32_t x_zero_,
                                 Int8Output out_)
    : channels(channels_), padded(padded16(channels_)), kernel(kernel_), stride(stride_), x_zero(x_zero_),
      out(std::move(out_)) {
  PMPL_ASSERT(static_cast<int64_t>(out.offset.size()) == padded, "{} offsets for {} channels", out.offset.size(),
              channels);
  const int64_t taps_per = static_cast<int64_t>(kernel) * kernel;
  taps.assign(static_cast<size_t>(taps_per * padded), 0);
  inner_offset = out.offset;
  for (int64_t ch = 0; ch < channels; ++ch) {
    for (int64_t t = 0; t < taps_per; ++t) {
      const int8_t v = weight[ch * taps_per + t];
      taps[static_cast<size_t>(t * padded + ch)] = v;
      inner_offset[static_cast<size_t>(ch)] -= x_zero * v;
    }
  }
}

namespace {

// Row `row` of outputs (n channels) from accumulators that hold their offsets already. Plain
// functions whose operands are all locals: in a lambda that reads them through its captures,
// every uint8 store may alias them (a char type aliases anything), and GCC left the loop scalar,
// reloading the zero point and clamps per element.
void emit_u8(const int32_t* acc, const float* scale, int64_t n, int32_t zero, int32_t lo, int32_t hi, uint8_t* out) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) out[j] = requantize_one(acc[j], scale[j], zero, lo, hi);
}

void emit_f32(const int32_t* acc, const float* scale, const float* bias, int64_t n, float* out) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) out[j] = static_cast<float>(acc[j]) * scale[j] + bias[j];
}

void emit(const int32_t* acc, const Int8Output& o, int64_t first, int64_t n, void* out, int64_t at) {
  if (o.u8) {
    emit_u8(acc, o.scale.data() + first, n, o.zero, o.lo, o.hi, static_cast<uint8_t*>(out) + at);
  } else {
    emit_f32(acc, o.scale.data() + first, o.bias.data() + first, n, static_cast<float*>(out) + at);
  }
}

// One 16-channel block of one pixel: acc[c] = offset[c] + sum_p x[p] * w[c][p].
void pointwise_block(const uint8_t* x, int64_t k, const int8_t* block, const int32_t* offset, int32_t* acc) {
  for (int c = 0; c < 16; ++c) acc[c] = offset[c];
  for (int64_t p0 = 0; p0 < k; p0 += 4) {
    const int8_t* w = block + p0 * 16;
    for (int64_t q = 0; q < 4 && p0 + q < k; ++q) {
      const int32_t v = x[p0 + q];
#pragma omp simd
      for (int c = 0; c < 16; ++c) acc[c] += v * w[c * 4 + q];
    }
  }
}

void pointwise_portable(const uint8_t* x, int64_t m, const PackedPointwise& p, void* out) {
  const int64_t n = p.n(), k = p.k(), blocks = p.blocks(), block_bytes = p.k_groups() * 64;
  const Int8Output& o = p.out();
#pragma omp parallel for if (m * n * k > (int64_t{1} << 20))
  for (int64_t i = 0; i < m; ++i) {
    alignas(64) int32_t acc[16];
    for (int64_t b = 0; b < blocks; ++b) {
      pointwise_block(x + i * k, k, p.weights() + b * block_bytes, o.offset.data() + b * 16, acc);
      emit(acc, o, b * 16, std::min<int64_t>(16, n - b * 16), out, i * n + b * 16);
    }
  }
}

// Each output pixel's window summed channel by channel: (x - zero) * tap fits int16 (|x - zero|
// <= 255, |tap| <= 127), so it is a 16-bit multiply (twice the lanes of a 32-bit one) widened to
// add.
void depthwise_portable(const uint8_t* x, int64_t batch, int64_t h, int64_t w, const PackedDepthwise& p, void* out) {
  const int k = p.kernel, stride = p.stride, pad = k / 2;
  const int64_t c = p.channels, ho = (h + 2 * pad - k) / stride + 1, wo = (w + 2 * pad - k) / stride + 1;
  const int16_t zero16 = static_cast<int16_t>(p.x_zero);
#pragma omp parallel
  {
    std::vector<int32_t> acc(static_cast<size_t>(c));
#pragma omp for
    for (int64_t row = 0; row < batch * ho; ++row) {
      const int64_t b = row / ho, oy = row % ho;
      for (int64_t ox = 0; ox < wo; ++ox) {
        std::copy(p.out.offset.begin(), p.out.offset.begin() + c, acc.begin());
        int32_t* a = acc.data();
        for (int ky = 0; ky < k; ++ky) {
          const int64_t iy = oy * stride + ky - pad;
          if (iy < 0 || iy >= h) continue;
          for (int kx = 0; kx < k; ++kx) {
            const int64_t ix = ox * stride + kx - pad;
            if (ix < 0 || ix >= w) continue;  // padding is the real 0: (zero - zero) * w adds nothing
            const uint8_t* px = x + ((b * h + iy) * w + ix) * c;
            const int16_t* t = p.taps.data() + (ky * k + kx) * p.padded;
#pragma omp simd
            for (int64_t ch = 0; ch < c; ++ch) a[ch] += static_cast<int16_t>(static_cast<int16_t>(px[ch] - zero16) * t[ch]);
          }
        }
        emit(a, p.out, 0, c, out, ((b * ho + oy) * wo + ox) * c);
      }
    }
  }
}

}  // namespace

void pointwise_u8(const uint8_t* x, int64_t m, const PackedPointwise& p, void* out, Int8Isa isa) {
  if (m == 0) return;
  if (isa == Int8Isa::kAvx512Vnni && avx512::available()) return avx512::pointwise(x, m, p, out);
  if (isa == Int8Isa::kAvx2 && avx2::available()) return avx2::pointwise(x, m, p, out);
  pointwise_portable(x, m, p, out);
}

void depthwise_u8(const uint8_t* x, int64_t batch, int64_t h, int64_t w, const PackedDepthwise& p, void* out,
                  Int8Isa isa) {
  if (isa == Int8Isa::kAvx512Vnni && avx512::available() && avx512::depthwise(x, batch, h, w, p, out)) return;
  if (isa == Int8Isa::kAvx2 && avx2::available() && avx2::depthwise(x, batch, h, w, p, out)) return;
  depthwise_portable(x, batch, h, w, p, out);
}

void add_u8(const uint8_t* a, QuantParams qa, const uint8_t* b, QuantParams qb, int64_t n, QuantParams out_q,
            uint8_t* out) {
  const float sa = qa.scale / out_q.scale, sb = qb.scale / out_q.scale;
  in_chunks(n, [&](int64_t i, int64_t count) {
    add_row(a + i, sa, qa.zero_point, b + i, sb, qb.zero_point, count, out_q.zero_point, out + i);
  });
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
      out[b * c + ch] = round_to_u8(static_cast<float>(sum[ch] - in_q.zero_point * hw) * scale, out_q.zero_point, 0, 255);
    }
  }
}

}  // namespace pmpl::deploy
