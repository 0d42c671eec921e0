// The quantised runtime's kernels: uint8 activations (real = scale * (q - zero_point), one scale
// per tensor), int8 weights (symmetric, one scale per output channel), int32 accumulators. Every
// output is requantised as q = clamp(round((acc + bias[c]) * multiplier[c]) + zero, lo, hi), with
// round to nearest, ties to even (as ONNX's QuantizeLinear); ReLU6 is the clamp. The convolutions run in AVX-512 VNNI where the
// CPU has it (int8_avx512.cpp), else in portable C++ the compiler vectorises.
#pragma once

#include <cmath>
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

// Which implementation runs the int8 convolutions: AVX-512 VNNI (vpdpbusd for the 1x1 convs'
// dot products of four uint8 x int8 pairs, vpdpwssd for the depthwise taps) where the CPU has
// it, else AVX2 (vpmaddwd on operands widened to int16; int8_vector.h), else portable C++ the
// compiler vectorises. All compute the same integers and round them the same way, so their
// outputs are equal bit for bit (tests/test_int8.cpp holds them to it).
enum class Int8Isa : uint8_t { kPortable, kAvx2, kAvx512Vnni };

// The best this CPU runs; kPortable when PMPL_REFERENCE_GEMM=1 is in the environment.
Int8Isa best_int8_isa();
// Every implementation this CPU runs, portable first (what the tests compare).
std::vector<Int8Isa> available_int8_isas();
const char* int8_isa_name(Int8Isa isa);

// A conv's output transform per channel, from the int32 sum `acc` of its products (x - x_zero)
// * w, with offset[c] = the bias in accumulator units for a uint8 output, 0 for f32:
//   uint8: q = clamp(round(v) + zero, lo, hi), v = float(acc + offset[c]) * scale[c] (the
//          product rounded to f32), round to nearest with ties to even. Clamping v to
//          [lo - zero - 1, hi - zero + 1] first changes no result and keeps the conversion to int
//          defined.
//   f32:   y = float(acc + offset[c]) * scale[c] + bias[c]
// The vectors are padded with zeros to whole blocks of 16 channels.
struct Int8Output {
  bool u8 = false;
  std::vector<int32_t> offset;
  std::vector<float> scale, bias;
  int32_t zero = 0, lo = 0, hi = 255;
};

// A requantised (`r`) or dequantised (`d`: r null) output of `channels` channels.
Int8Output make_int8_output(int64_t channels, const Requantize* r, const Dequantize* d);

// An Int8Output's constants as the vector kernels read them in their loops.
struct Int8OutputView {
  explicit Int8OutputView(const Int8Output& o)
      : offset(o.offset.data()), scale(o.scale.data()), bias(o.bias.data()),
        above(static_cast<float>(o.hi - o.zero + 1)), zero(o.zero), lo(o.lo), hi(o.hi) {}
  const int32_t* offset;
  const float* scale;
  const float* bias;
  float above;  // hi - zero + 1: no larger value changes the result
  int32_t zero, lo, hi;
};

// v rounded to the nearest integer, ties to even: what ONNX's QuantizeLinear does, and one
// instruction (vcvtps2dq) in the vector kernels. |v| must be below 2^31.
inline int32_t round_even(float v) { return static_cast<int32_t>(std::nearbyint(v)); }

// v (in steps of the output's scale) plus the zero point, rounded and clamped to [lo, hi] (within
// [0, 255]). v is clamped to [lo - zero - 1, hi - zero + 1] first, which changes no result and
// keeps the conversion to int defined for any float (NaN gives lo).
inline uint8_t round_to_u8(float v, int32_t zero, int32_t lo, int32_t hi) {
  const float below = static_cast<float>(lo - zero - 1), above = static_cast<float>(hi - zero + 1);
  v = v > below ? v : below;
  v = v < above ? v : above;
  const int32_t q = round_even(v) + zero;
  return static_cast<uint8_t>(q < lo ? lo : q > hi ? hi : q);
}

// The uint8 value of one accumulator, offset included, by Int8Output's definition.
inline uint8_t requantize_one(int32_t acc, float scale, int32_t zero, int32_t lo, int32_t hi) {
  return round_to_u8(static_cast<float>(acc) * scale, zero, lo, hi);
}

void quantize_u8(const float* x, int64_t n, QuantParams q, uint8_t* out);
void dequantize_u8(const uint8_t* x, int64_t n, QuantParams q, float* out);

// A 1x1 conv's (or linear layer's) int8 weight [n, k] packed for the kernels: blocks of 16
// output channels, each [ceil(k / 4)][16][4] (four consecutive inputs of one channel, what one
// 32-bit lane of vpdpbusd multiplies), zero-padded, 64-byte aligned. The input's zero point is
// folded into the output's offsets: sum (x - z) w = sum x w - z sum w.
class PackedPointwise {
 public:
  PackedPointwise() = default;
  PackedPointwise(const int8_t* weight, int64_t n, int64_t k, int32_t x_zero, Int8Output out);
  int64_t n() const { return n_; }
  int64_t k() const { return k_; }
  int64_t k_groups() const { return (k_ + 3) / 4; }
  int64_t blocks() const { return (n_ + 15) / 16; }
  // Block b's packed weights start at weights() + b * k_groups() * 64.
  const int8_t* weights() const { return aligned(bytes_.data()); }
  const Int8Output& out() const { return out_; }

 private:
  static const int8_t* aligned(const int8_t* p);
  int64_t n_ = 0, k_ = 0;
  std::vector<int8_t> bytes_;  // the blocks, from the first 64-byte boundary inside
  Int8Output out_;
};

// x uint8 [m, k] (pixels by input channels) -> out [m, n], uint8 or f32 as p.out() says.
void pointwise_u8(const uint8_t* x, int64_t m, const PackedPointwise& p, void* out, Int8Isa isa = best_int8_isa());

// A depthwise k x k conv (padding k / 2) packed for the kernels: its taps as [k * k][channels]
// int16 (channels padded to 16), and its offsets for pixels whose window is all inside the image
// (the zero point folded in: sum (x - z) t = sum x t - z sum t) beside those of border pixels.
struct PackedDepthwise {
  PackedDepthwise() = default;
  PackedDepthwise(const int8_t* weight, int64_t channels, int kernel, int stride, int32_t x_zero, Int8Output out);
  int64_t channels = 0, padded = 0;
  int kernel = 1, stride = 1;
  int32_t x_zero = 0;
  std::vector<int16_t> taps;
  std::vector<int32_t> inner_offset;  // out.offset - x_zero * sum of the channel's taps
  Int8Output out;
};

// NHWC x [batch, h, w, c] -> [batch, ho, wo, c], uint8 or f32 as p.out says.
void depthwise_u8(const uint8_t* x, int64_t batch, int64_t h, int64_t w, const PackedDepthwise& p, void* out,
                  Int8Isa isa = best_int8_isa());

// a + b elementwise (each with its parameters), requantised to `out_q`.
void add_u8(const uint8_t* a, QuantParams qa, const uint8_t* b, QuantParams qb, int64_t n, QuantParams out_q,
            uint8_t* out);

// The mean over H and W of each image and channel, x [batch, hw, c] (parameters `in_q`) ->
// [batch, c] (parameters `out_q`).
void global_avg_pool_u8(const uint8_t* x, int64_t batch, int64_t hw, int64_t c, QuantParams in_q, QuantParams out_q,
                        uint8_t* out);

}  // namespace pmpl::deploy
