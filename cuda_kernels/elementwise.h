// Elementwise CUDA kernels (legacy default stream), the device side of
// engine/ops/{activation,binary,weighted_sum,normalize,dropout,channel_affine}.cpp. Tensors of
// `dtype` (f32, bf16, f16: computed in f32, rounded once when stored) unless a function says
// float. Per-element math is core/math.h's, shared with the CPU. Written without a GPU: compiled
// here, checked against the CPU ops by the CudaOps.* tests where a GPU is present.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "core/kernels/indexing.h"

namespace pmpl::cuda {

enum class Unary : uint8_t { kRelu, kRelu6, kHardswish, kHardsigmoid, kSigmoid, kSilu };
void unary_forward(Unary op, DType dtype, const void* x, void* y, int64_t n);
// gx = f'(x) * gy
void unary_backward(Unary op, DType dtype, const void* x, const void* gy, void* gx, int64_t n);

enum class Binary : uint8_t { kAdd, kSub, kMul, kSecond };
using kernels::Broadcast5;
// y[i] = op(a, b) over the broadcast (plan null: same shapes, n elements).
void binary(Binary op, DType dtype, const void* a, const void* b, void* y, int64_t n, const Broadcast5* plan);

void scale(DType dtype, const void* x, float factor, void* y, int64_t n);

// ops::channel_shuffle over n elements of rows of c channels (any dtype: elements are moved, not
// computed; elem_size 2, 4 or 8 bytes).
void channel_shuffle(size_t elem_size, const void* x, void* y, int64_t n, int64_t c, int64_t groups);
void axpy(DType dtype, void* dst, float alpha, const void* src, int64_t n);  // dst += alpha * src

inline constexpr int kMaxWeighted = 16;
struct Inputs {
  const float* p[kMaxWeighted];
};
// float: y = sum_k w[k] * xs[k] (w: k floats in device memory), accumulated in order k = 0..K-1.
void weighted_sum(const Inputs& xs, int k, const float* w, float* y, int64_t n);

// u8 [pixels, 3] -> x * scale[c] + shift[c], stored as out_dtype.
void normalize_images(const uint8_t* in, void* out, DType out_dtype, int64_t pixels, const float scale[3],
                      const float shift[3]);

// Random erasing in place on x [n, h, w, 3] (ops::erase_boxes_): boxes i32 [n, k, 4], keys i64 [n].
void erase_boxes(DType dtype, void* x, int64_t n, int64_t h, int64_t w, const int32_t* boxes, int k,
                 const int64_t* keys, int fill);

// out[i] = keep ? in[i] * keep_scale : 0, keep when the i-th uniform of (seed, offset) is >= p
// (keep_scale = 1 / (1 - p), rounded by the caller as the CPU op rounds it).
void dropout(DType dtype, const void* in, void* out, int64_t n, float p, float keep_scale, uint64_t seed,
             uint64_t offset);

// float: channel_affine: y = act(x * scale + shift) over [rows, c] (scale may be null); act as
// ops::ChannelActivation (core/math.h's channel_activation numbers).
void channel_affine(const float* x, const float* scale, const float* shift, float* y, int64_t rows, int64_t c,
                    int act);
// d = dy * act'(x * scale + shift); dx = d * scale (dx may be null; d and dx may be the same).
void channel_affine_grad(const float* x, const float* scale, const float* shift, const float* gy, float* d,
                         float* dx, int64_t rows, int64_t c, int act);

}  // namespace pmpl::cuda
