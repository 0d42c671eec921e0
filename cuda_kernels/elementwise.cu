#include "cuda_kernels/elementwise.h"

#include "engine/cuda_check.h"
#include "engine/math.h"
#include "engine/rng.h"

namespace pmpl::cuda {
namespace {

constexpr int kThreads = 256;

int blocks_for(int64_t n) {
  const int64_t wanted = (n + kThreads - 1) / kThreads;
  return static_cast<int>(wanted < 65535 * 32 ? wanted : 65535 * 32);
}

// A grid-stride loop over [0, n).
#define PMPL_FOR_EACH(i, n)                                                                    \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n);      \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

__device__ float unary_value(Unary op, float x) {
  switch (op) {
    case Unary::kRelu: return math::relu(x);
    case Unary::kRelu6: return math::relu6(x);
    case Unary::kHardswish: return math::hardswish(x);
    case Unary::kHardsigmoid: return math::hardsigmoid(x);
    case Unary::kSigmoid: return math::sigmoid(x);
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
  }
  return 1.0f;
}

__global__ void unary_forward_kernel(Unary op, const float* x, float* y, int64_t n) {
  PMPL_FOR_EACH(i, n) y[i] = unary_value(op, x[i]);
}

__global__ void unary_backward_kernel(Unary op, const float* x, const float* gy, float* gx, int64_t n) {
  PMPL_FOR_EACH(i, n) gx[i] = unary_derivative(op, x[i]) * gy[i];
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

__global__ void binary_same_kernel(Binary op, const float* a, const float* b, float* y, int64_t n) {
  PMPL_FOR_EACH(i, n) y[i] = binary_value(op, a[i], b[i]);
}

__global__ void binary_broadcast_kernel(Binary op, const float* a, const float* b, float* y, int64_t n,
                                        Broadcast5 p) {
  PMPL_FOR_EACH(i, n) {
    int64_t rest = i, ao = 0, bo = 0;
    for (int axis = 4; axis >= 0; --axis) {
      const int64_t idx = rest % p.dims[axis];
      rest /= p.dims[axis];
      ao += idx * p.a[axis];
      bo += idx * p.b[axis];
    }
    y[i] = binary_value(op, a[ao], b[bo]);
  }
}

__global__ void scale_kernel(const float* x, float f, float* y, int64_t n) { PMPL_FOR_EACH(i, n) y[i] = x[i] * f; }

__global__ void axpy_kernel(float* dst, float alpha, const float* src, int64_t n) {
  PMPL_FOR_EACH(i, n) dst[i] += alpha * src[i];
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

__global__ void normalize_kernel(const uint8_t* in, float* out, int64_t pixels, Affine3 a) {
  PMPL_FOR_EACH(i, pixels * 3) {
    const int c = static_cast<int>(i % 3);
    out[i] = static_cast<float>(in[i]) * a.scale[c] + a.shift[c];
  }
}

__global__ void dropout_kernel(const float* in, float* out, int64_t n, float p, float keep_scale, uint64_t seed,
                               uint64_t offset) {
  PMPL_FOR_EACH(i, n) {
    const bool keep = philox_uniform(seed, offset, static_cast<uint64_t>(i)) >= p;
    out[i] = keep ? in[i] * keep_scale : 0.0f;
  }
}

__device__ float activate(float z, int act) {
  return act == 1 ? math::relu6(z) : (act == 2 ? math::hardswish(z) : z);
}
__device__ float activate_grad(float z, int act) {
  return act == 1 ? math::relu6_grad(z) : (act == 2 ? math::hardswish_grad(z) : 1.0f);
}

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

void check_launch() { CUDA_CHECK(cudaGetLastError()); }

}  // namespace

void unary_forward(Unary op, const float* x, float* y, int64_t n) {
  if (n == 0) return;
  unary_forward_kernel<<<blocks_for(n), kThreads>>>(op, x, y, n);
  check_launch();
}

void unary_backward(Unary op, const float* x, const float* gy, float* gx, int64_t n) {
  if (n == 0) return;
  unary_backward_kernel<<<blocks_for(n), kThreads>>>(op, x, gy, gx, n);
  check_launch();
}

void binary(Binary op, const float* a, const float* b, float* y, int64_t n, const Broadcast5* plan) {
  if (n == 0) return;
  if (plan == nullptr) binary_same_kernel<<<blocks_for(n), kThreads>>>(op, a, b, y, n);
  else binary_broadcast_kernel<<<blocks_for(n), kThreads>>>(op, a, b, y, n, *plan);
  check_launch();
}

void scale(const float* x, float factor, float* y, int64_t n) {
  if (n == 0) return;
  scale_kernel<<<blocks_for(n), kThreads>>>(x, factor, y, n);
  check_launch();
}

void axpy(float* dst, float alpha, const float* src, int64_t n) {
  if (n == 0) return;
  axpy_kernel<<<blocks_for(n), kThreads>>>(dst, alpha, src, n);
  check_launch();
}

void weighted_sum(const Inputs& xs, int k, const float* w, float* y, int64_t n) {
  if (n == 0) return;
  weighted_sum_kernel<<<blocks_for(n), kThreads>>>(xs, k, w, y, n);
  check_launch();
}

void normalize_images(const uint8_t* in, float* out, int64_t pixels, const float scale[3], const float shift[3]) {
  if (pixels == 0) return;
  Affine3 a;
  for (int c = 0; c < 3; ++c) {
    a.scale[c] = scale[c];
    a.shift[c] = shift[c];
  }
  normalize_kernel<<<blocks_for(3 * pixels), kThreads>>>(in, out, pixels, a);
  check_launch();
}

void dropout(const float* in, float* out, int64_t n, float p, float keep_scale, uint64_t seed, uint64_t offset) {
  if (n == 0) return;
  dropout_kernel<<<blocks_for(n), kThreads>>>(in, out, n, p, keep_scale, seed, offset);
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
