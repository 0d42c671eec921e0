// Elementwise CUDA kernels (float32 unless said, legacy default stream), the device side of
// engine/ops/{activation,binary,weighted_sum,normalize,dropout,channel_affine}.cpp. Per-element
// math is engine/math.h's, shared with the CPU. Written without a GPU: compiled here, checked
// against the CPU ops by the Cuda.* tests where a GPU is present.
#pragma once

#include <cstdint>

namespace pmpl::cuda {

enum class Unary : uint8_t { kRelu, kRelu6, kHardswish, kHardsigmoid, kSigmoid };
void unary_forward(Unary op, const float* x, float* y, int64_t n);
// gx = f'(x) * gy
void unary_backward(Unary op, const float* x, const float* gy, float* gx, int64_t n);

enum class Binary : uint8_t { kAdd, kSub, kMul, kSecond };
// Shapes right-aligned into five dimensions; element strides, 0 where an operand is broadcast.
struct Broadcast5 {
  int64_t dims[5];
  int64_t a[5];
  int64_t b[5];
};
// y[i] = op(a, b) over the broadcast (plan null: same shapes, n elements).
void binary(Binary op, const float* a, const float* b, float* y, int64_t n, const Broadcast5* plan);

void scale(const float* x, float factor, float* y, int64_t n);
void axpy(float* dst, float alpha, const float* src, int64_t n);  // dst += alpha * src

inline constexpr int kMaxWeighted = 16;
struct Inputs {
  const float* p[kMaxWeighted];
};
// y = sum_k w[k] * xs[k] (w: k floats in device memory), accumulated in order k = 0..K-1.
void weighted_sum(const Inputs& xs, int k, const float* w, float* y, int64_t n);

// u8 [pixels, 3] -> float, x * scale[c] + shift[c].
void normalize_images(const uint8_t* in, float* out, int64_t pixels, const float scale[3], const float shift[3]);

// out[i] = keep ? in[i] * keep_scale : 0, keep when the i-th uniform of (seed, offset) is >= p
// (keep_scale = 1 / (1 - p), rounded by the caller as the CPU op rounds it).
void dropout(const float* in, float* out, int64_t n, float p, float keep_scale, uint64_t seed, uint64_t offset);

// channel_affine: y = act(x * scale + shift) over [rows, c] (scale may be null); act as
// ops::ChannelActivation (0 none, 1 relu6, 2 hardswish).
void channel_affine(const float* x, const float* scale, const float* shift, float* y, int64_t rows, int64_t c,
                    int act);
// d = dy * act'(x * scale + shift); dx = d * scale (dx may be null; d and dx may be the same).
void channel_affine_grad(const float* x, const float* scale, const float* shift, const float* gy, float* d,
                         float* dx, int64_t rows, int64_t c, int act);

}  // namespace pmpl::cuda
