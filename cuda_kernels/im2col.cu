#include "cuda_kernels/im2col.h"

#include "engine/cuda_check.h"

namespace pmpl::cuda {
namespace {

constexpr int kThreads = 256;

int blocks_for(int64_t n) {
  const int64_t wanted = (n + kThreads - 1) / kThreads;
  return static_cast<int>(wanted < 65535 * 32 ? wanted : 65535 * 32);
}

__global__ void im2col_kernel(const float* x, ConvShape g, int64_t total, float* cols) {
  const int64_t k = g.kh * g.kw * g.cin;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t col = e % k, pixel = e / k;
    const int64_t c = col % g.cin, kj = (col / g.cin) % g.kw, ki = col / (g.cin * g.kw);
    const int64_t ow = pixel % g.wo, oh = (pixel / g.wo) % g.ho, n = pixel / (g.wo * g.ho);
    const int64_t ih = oh * g.stride - g.padding + ki, iw = ow * g.stride - g.padding + kj;
    const bool inside = ih >= 0 && ih < g.h && iw >= 0 && iw < g.w;
    cols[e] = inside ? x[((n * g.h + ih) * g.w + iw) * g.cin + c] : 0.0f;
  }
}

__global__ void col2im_kernel(const float* dcols, ConvShape g, int64_t total, float* dx) {
  const int64_t k = g.kh * g.kw * g.cin;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c = e % g.cin, iw = (e / g.cin) % g.w, ih = (e / (g.cin * g.w)) % g.h, n = e / (g.cin * g.w * g.h);
    float acc = 0.0f;
    // Output rows oh with oh * stride - padding + ki == ih for some tap ki, in increasing oh.
    for (int64_t ki = g.kh - 1; ki >= 0; --ki) {
      const int64_t t = ih + g.padding - ki;
      if (t < 0 || t % g.stride != 0 || t / g.stride >= g.ho) continue;
      const int64_t oh = t / g.stride;
      for (int64_t kj = g.kw - 1; kj >= 0; --kj) {
        const int64_t u = iw + g.padding - kj;
        if (u < 0 || u % g.stride != 0 || u / g.stride >= g.wo) continue;
        const int64_t ow = u / g.stride;
        acc += dcols[((n * g.ho + oh) * g.wo + ow) * k + (ki * g.kw + kj) * g.cin + c];
      }
    }
    dx[e] = acc;
  }
}

}  // namespace

void im2col(const float* x, const ConvShape& g, int64_t images, float* cols) {
  const int64_t total = images * g.ho * g.wo * g.kh * g.kw * g.cin;
  if (total == 0) return;
  im2col_kernel<<<blocks_for(total), kThreads>>>(x, g, total, cols);
  CUDA_CHECK(cudaGetLastError());
}

void col2im(const float* dcols, const ConvShape& g, int64_t images, float* dx) {
  const int64_t total = images * g.h * g.w * g.cin;
  if (total == 0) return;
  col2im_kernel<<<blocks_for(total), kThreads>>>(dcols, g, total, dx);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace pmpl::cuda
