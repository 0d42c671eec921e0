#include "cuda_kernels/elementwise.h"

#include "cuda_kernels/launch.cuh"
#include "core/kernels/erase.h"
#include "core/math.h"
#include "core/rng.h"

namespace pmpl::cuda {
namespace {

__device__ float unary_value(Unary op, float x) {
  switch (op) {
    case Unary::kRelu: return math::relu(x);
    case Unary::kRelu6: return math::relu6(x);
    case Unary::kHardswish: return math::hardswish(x);
    case Unary::kHardsigmoid: return math::hardsigmoid(x);
    case Unary::kSigmoid: return math::sigmoid(x);
    case Unary::kSilu: return math::silu(x);
  }
  return x;
}

__device__ float unary_derivative(Unary op, float x) {
  switch (op) {
    case Unary::kRelu: return math::relu_grad(x);
    case Unary::kRelu6: return math::relu6_grad(x);
    case Unary::kHardswish: return math::hardswish_grad(x);
    case Unary::kHardsigmoid: return math::hardsigmoid_grad(x);
    case Unary::kSigmoid: return math::sigmoid_grad(x);
    case Unary::kSilu: return math::silu_grad(x);
  }
  return 1.0f;
}

template <class S>
__global__ void unary_forward_kernel(Unary op, const S* x, S* y, int64_t n) {
  PMPL_FOR_EACH(i, n) store(y, i, unary_value(op, load(x, i)));
}

template <class S>
__global__ void unary_backward_kernel(Unary op, const S* x, const S* gy, S* gx, int64_t n) {
  PMPL_FOR_EACH(i, n) store(gx, i, unary_derivative(op, load(x, i)) * load(gy, i));
}

__device__ float binary_value(Binary op, float a, float b) {
  switch (op) {
    case Binary::kAdd: return a + b;
    case Binary::kSub: return a - b;
    case Binary::kMul: return a * b;
    case Binary::kSecond: return b;
  }
  return a;
}

template <class S>
__global__ void binary_same_kernel(Binary op, const S* a, const S* b, S* y, int64_t n) {
  PMPL_FOR_EACH(i, n) store(y, i, binary_value(op, load(a, i), load(b, i)));
}

template <class S>
__global__ void binary_broadcast_kernel(Binary op, const S* a, const S* b, S* y, int64_t n, Broadcast5 p) {
  PMPL_FOR_EACH(i, n) {
    int64_t ao, bo;
    kernels::broadcast_offsets(i, p, ao, bo);
    store(y, i, binary_value(op, load(a, ao), load(b, bo)));
  }
}

template <class T>
__global__ void channel_shuffle_kernel(const T* x, T* y, int64_t n, int64_t c, int64_t groups) {
  PMPL_FOR_EACH(i, n) {
    const int64_t row = i / c;
    y[i] = x[row * c + kernels::shuffle_source(i - row * c, c, groups)];
  }
}

template <class S>
__global__ void scale_kernel(const S* x, float f, S* y, int64_t n) {
  PMPL_FOR_EACH(i, n) store(y, i, load(x, i) * f);
}

template <class S>
__global__ void axpy_kernel(S* dst, float alpha, const S* src, int64_t n) {
  PMPL_FOR_EACH(i, n) store(dst, i, load(dst, i) + alpha * load(src, i));
}

__global__ void weighted_sum_kernel(Inputs xs, int k, const float* w, float* y, int64_t n) {
  PMPL_FOR_EACH(i, n) {
    float v = w[0] * xs.p[0][i];
    for (int j = 1; j < k; ++j) v += w[j] * xs.p[j][i];
    y[i] = v;
  }
}

struct Affine3 {
  float scale[3], shift[3];
};

template <class S>
__global__ void normalize_kernel(const uint8_t* in, S* out, int64_t pixels, Affine3 a) {
  PMPL_FOR_EACH(i, pixels * 3) {
    const int c = static_cast<int>(i % 3);
    store(out, i, static_cast<float>(in[i]) * a.scale[c] + a.shift[c]);
  }
}

// One thread per pixel: the covering box, if any, decides its three values.
template <class S>
__global__ void erase_kernel(S* x, int64_t n, int64_t h, int64_t w, const int32_t* boxes, int k, const int64_t* keys,
                             int fill) {
  PMPL_FOR_EACH(p, n * h * w) {
    const int64_t image = p / (h * w), pixel = p % (h * w);
    const int box = kernels::covering_box(boxes + image * k * 4, k, static_cast<int>(pixel / w),
                                          static_cast<int>(pixel % w));
    if (box < 0) continue;
    const uint64_t key = static_cast<uint64_t>(keys[image]);
    for (int c = 0; c < 3; ++c) store(x, p * 3 + c, kernels::erase_value(fill, key, box, pixel, c));
  }
}

template <class S>
__global__ void dropout_kernel(const S* in, S* out, int64_t n, float p, float keep_scale, uint64_t seed,
                               uint64_t offset) {
  PMPL_FOR_EACH(i, n) {
    const bool keep = philox_uniform(seed, offset, static_cast<uint64_t>(i)) >= p;
    store(out, i, keep ? load(in, i) * keep_scale : 0.0f);
  }
}

__device__ float activate(float z, int act) { return math::channel_activation(z, act); }
__device__ float activate_grad(float z, int act) { return math::channel_activation_grad(z, act); }

__global__ void channel_affine_kernel(const float* x, const float* scale, const float* shift, float* y, int64_t n,
                                      int64_t c, int act) {
  PMPL_FOR_EACH(i, n) {
    const int64_t j = i % c;
    const float z = scale != nullptr ? x[i] * scale[j] + shift[j] : x[i] + shift[j];
    y[i] = activate(z, act);
  }
}

__global__ void channel_affine_grad_kernel(const float* x, const float* scale, const float* shift, const float* gy,
                                           float* d, float* dx, int64_t n, int64_t c, int act) {
  PMPL_FOR_EACH(i, n) {
    const int64_t j = i % c;
    const float z = scale != nullptr ? x[i] * scale[j] + shift[j] : x[i] + shift[j];
    const float di = gy[i] * activate_grad(z, act);
    d[i] = di;
    if (dx != nullptr) dx[i] = scale != nullptr ? di * scale[j] : di;
  }
}

}  // namespace

void unary_forward(Unary op, DType dtype, const void* x, void* y, int64_t n) {
  if (n == 0) return;
  dispatch_storage(dtype, "unary", [&](auto tag) {
    using S = decltype(tag);
    unary_forward_kernel<<<blocks_for(n), kThreads>>>(op, static_cast<const S*>(x), static_cast<S*>(y), n);
  });
  check_launch();
}

void unary_backward(Unary op, DType dtype, const void* x, const void* gy, void* gx, int64_t n) {
  if (n == 0) return;
  dispatch_storage(dtype, "unary", [&](auto tag) {
    using S = decltype(tag);
    unary_backward_kernel<<<blocks_for(n), kThreads>>>(op, static_cast<const S*>(x), static_cast<const S*>(gy),
                                                       static_cast<S*>(gx), n);
  });
  check_launch();
}

void binary(Binary op, DType dtype, const void* a, const void* b, void* y, int64_t n, const Broadcast5* plan) {
  if (n == 0) return;
  dispatch_storage(dtype, "binary", [&](auto tag) {
    using S = decltype(tag);
    const auto* pa = static_cast<const S*>(a);
    const auto* pb = static_cast<const S*>(b);
    auto* py = static_cast<S*>(y);
    if (plan == nullptr) binary_same_kernel<<<blocks_for(n), kThreads>>>(op, pa, pb, py, n);
    else binary_broadcast_kernel<<<blocks_for(n), kThreads>>>(op, pa, pb, py, n, *plan);
  });
  check_launch();
}

void scale(DType dtype, const void* x, float factor, void* y, int64_t n) {
  if (n == 0) return;
  dispatch_storage(dtype, "scale", [&](auto tag) {
    using S = decltype(tag);
    scale_kernel<<<blocks_for(n), kThreads>>>(static_cast<const S*>(x), factor, static_cast<S*>(y), n);
  });
  check_launch();
}

void channel_shuffle(size_t elem_size, const void* x, void* y, int64_t n, int64_t c, int64_t groups) {
  if (n == 0) return;
  const auto launch = [&](auto tag) {
    using T = decltype(tag);
    channel_shuffle_kernel<<<blocks_for(n), kThreads>>>(static_cast<const T*>(x), static_cast<T*>(y), n, c, groups);
  };
  if (elem_size == 2) launch(uint16_t{});
  else if (elem_size == 4) launch(uint32_t{});
  else launch(uint64_t{});
  check_launch();
}

void axpy(DType dtype, void* dst, float alpha, const void* src, int64_t n) {
  if (n == 0) return;
  dispatch_storage(dtype, "axpy", [&](auto tag) {
    using S = decltype(tag);
    axpy_kernel<<<blocks_for(n), kThreads>>>(static_cast<S*>(dst), alpha, static_cast<const S*>(src), n);
  });
  check_launch();
}

void weighted_sum(const Inputs& xs, int k, const float* w, float* y, int64_t n) {
  if (n == 0) return;
  weighted_sum_kernel<<<blocks_for(n), kThreads>>>(xs, k, w, y, n);
  check_launch();
}

void normalize_images(const uint8_t* in, void* out, DType out_dtype, int64_t pixels, const float scale[3],
                      const float shift[3]) {
  if (pixels == 0) return;
  Affine3 a;
  for (int c = 0; c < 3; ++c) {
    a.scale[c] = scale[c];
    a.shift[c] = shift[c];
  }
  dispatch_storage(out_dtype, "normalize_images", [&](auto tag) {
    using S = decltype(tag);
    normalize_kernel<<<blocks_for(3 * pixels), kThreads>>>(in, static_cast<S*>(out), pixels, a);
  });
  check_launch();
}

void erase_boxes(DType dtype, void* x, int64_t n, int64_t h, int64_t w, const int32_t* boxes, int k,
                 const int64_t* keys, int fill) {
  if (n * h * w == 0 || k == 0) return;
  dispatch_storage(dtype, "erase_boxes", [&](auto tag) {
    using S = decltype(tag);
    erase_kernel<<<blocks_for(n * h * w), kThreads>>>(static_cast<S*>(x), n, h, w, boxes, k, keys, fill);
  });
  check_launch();
}

void dropout(DType dtype, const void* in, void* out, int64_t n, float p, float keep_scale, uint64_t seed,
             uint64_t offset) {
  if (n == 0) return;
  dispatch_storage(dtype, "dropout", [&](auto tag) {
    using S = decltype(tag);
    dropout_kernel<<<blocks_for(n), kThreads>>>(static_cast<const S*>(in), static_cast<S*>(out), n, p, keep_scale,
                                                seed, offset);
  });
  check_launch();
}

void channel_affine(const float* x, const float* scale, const float* shift, float* y, int64_t rows, int64_t c,
                    int act) {
  if (rows * c == 0) return;
  channel_affine_kernel<<<blocks_for(rows * c), kThreads>>>(x, scale, shift, y, rows * c, c, act);
  check_launch();
}

void channel_affine_grad(const float* x, const float* scale, const float* shift, const float* gy, float* d, float* dx,
                         int64_t rows, int64_t c, int act) {
  if (rows * c == 0) return;
  channel_affine_grad_kernel<<<blocks_for(rows * c), kThreads>>>(x, scale, shift, gy, d, dx, rows * c, c, act);
  check_launch();
}

}  // namespace pmpl::cuda
