// The quantised runtime's kernels: uint8 activations (real = scale * (q - zero_point), one scale
// per tensor), int8 weights (symmetric, one scale per output channel), int32 accumulators. Every
// output is requantised as q = clamp(round((acc + bias[c]) * multiplier[c]) + zero, lo, hi), with
// round half away from zero; ReLU6 is the clamp. Portable C++ the compiler vectorises, except the
// 1x1 convs' GEMM (engine/blas.h's gemm_u8s8s32: oneDNN with VNNI where the CPU has it).
#pragma once

#include <cstdint>
#include <vector>

namespace pmpl::deploy {

struct QuantParams {
  float scale = 1.0f;
  int32_t zero_point = 0;
};

// The uint8 parameters of a tensor observed in [lo, hi] (0 always inside: padding and ReLU's
// zero must be exact).
QuantParams choose_params(double lo, double hi);

struct Requantize {
  std::vector<int32_t> bias;      // per output channel, in accumulator units
  std::vector<float> multiplier;  // per output channel: in_scale * weight_scale[c] / out_scale
  int32_t zero = 0, lo = 0, hi = 255;
};

// What the requantisation's clamp applies: nothing, ReLU (at the zero point) or ReLU6.
enum class Clamp : uint8_t { kNone, kReLU, kReLU6 };

// The requantisation of a conv with per-channel weight scales and a float bias, from `in` to
// `out`, clamped as `clamp` says.
Requantize make_requantize(const std::vector<float>& weight_scale, const std::vector<float>& bias, QuantParams in,
                           QuantParams out, Clamp clamp);

// The f32 output of an int8 layer whose activation no clamp expresses (hardswish, SiLU, ...) or
// whose reader wants f32: y = acc * scale[c] + bias[c], scale = in_scale * weight_scale[c].
struct Dequantize {
  std::vector<float> scale, bias;
};
Dequantize make_dequantize(const std::vector<float>& weight_scale, const std::vector<float>& bias, QuantParams in);

inline uint8_t requantize_one(int32_t acc, int32_t bias, float multiplier, int32_t zero, int32_t lo, int32_t hi) {
  const float v = static_cast<float>(acc + bias) * multiplier;
  int32_t q = static_cast<int32_t>(v + (v >= 0.0f ? 0.5f : -0.5f)) + zero;
  q = q < lo ? lo : q;
  return static_cast<uint8_t>(q > hi ? hi : q);
}

void quantize_u8(const float* x, int64_t n, QuantParams q, uint8_t* out);
void dequantize_u8(const uint8_t* x, int64_t n, QuantParams q, float* out);

// 1x1 conv over rows of pixels: x [m, k] -> out [m, n], weight [n, k]; `scratch` holds m * n.
void conv1x1_u8(const uint8_t* x, int64_t m, int64_t k, int32_t x_zero, const int8_t* weight, int64_t n,
                const Requantize& r, std::vector<int32_t>& scratch, uint8_t* out);

// The same, to f32 (`d`).
void conv1x1_u8_f32(const uint8_t* x, int64_t m, int64_t k, int32_t x_zero, const int8_t* weight, int64_t n,
                    const Dequantize& d, std::vector<int32_t>& scratch, float* out);

// Depthwise k x k conv, padding k / 2, NHWC x [batch, h, w, c] -> [batch, ho, wo, c]; `taps` is
// the weight as [k * k][c] (tap-major, so channels vectorise), widened to int16.
void depthwise_u8(const uint8_t* x, int64_t batch, int64_t h, int64_t w, int64_t c, int32_t x_zero,
                  const int16_t* taps, int k, int stride, const Requantize& r, uint8_t* out);
void depthwise_u8_f32(const uint8_t* x, int64_t batch, int64_t h, int64_t w, int64_t c, int32_t x_zero,
                      const int16_t* taps, int k, int stride, const Dequantize& d, float* out);

// a + b elementwise (each with its parameters), requantised to `out_q`.
void add_u8(const uint8_t* a, QuantParams qa, const uint8_t* b, QuantParams qb, int64_t n, QuantParams out_q,
            uint8_t* out);

// The mean over H and W of each image and channel, x [batch, hw, c] (parameters `in_q`) ->
// [batch, c] (parameters `out_q`).
void global_avg_pool_u8(const uint8_t* x, int64_t batch, int64_t hw, int64_t c, QuantParams in_q, QuantParams out_q,
                        uint8_t* out);

}  // namespace pmpl::deploy
