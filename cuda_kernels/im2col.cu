#include "cuda_kernels/im2col.h"

#include "cuda_kernels/launch.cuh"

namespace pmpl::cuda {
namespace {

template <class S>
__global__ void im2col_kernel(const S* x, ConvShape g, int64_t total, S* cols) {
  const int64_t k = g.kh * g.kw * g.cin;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t col = e % k, pixel = e / k;
    const int64_t c = col % g.cin, kj = (col / g.cin) % g.kw, ki = col / (g.cin * g.kw);
    const int64_t ow = pixel % g.wo, oh = (pixel / g.wo) % g.ho, n = pixel / (g.wo * g.ho);
    const int64_t ih = oh * g.stride - g.padding + ki, iw = ow * g.stride - g.padding + kj;
    const bool inside = ih >= 0 && ih < g.h && iw >= 0 && iw < g.w;
    cols[e] = inside ? x[((n * g.h + ih) * g.w + iw) * g.cin + c] : S(0.0f);
  }
}

template <class S>
__global__ void col2im_kernel(const S* dcols, ConvShape g, int64_t total, S* dx) {
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
        acc += load(dcols, ((n * g.ho + oh) * g.wo + ow) * k + (ki * g.kw + kj) * g.cin + c);
      }
    }
    store(dx, e, acc);
  }
}

}  // namespace

void im2col(DType dtype, const void* x, const ConvShape& g, int64_t images, void* cols) {
  const int64_t total = images * g.ho * g.wo * g.kh * g.kw * g.cin;
  if (total == 0) return;
  dispatch_storage(dtype, "conv2d", [&](auto tag) {
    using S = decltype(tag);
    im2col_kernel<<<blocks_for(total), kThreads>>>(static_cast<const S*>(x), g, total, static_cast<S*>(cols));
  });
  check_launch();
}

void col2im(DType dtype, const void* dcols, const ConvShape& g, int64_t images, void* dx) {
  const int64_t total = images * g.h * g.w * g.cin;
  if (total == 0) return;
  dispatch_storage(dtype, "conv2d", [&](auto tag) {
    using S = decltype(tag);
    col2im_kernel<<<blocks_for(total), kThreads>>>(static_cast<const S*>(dcols), g, total, static_cast<S*>(dx));
  });
  check_launch();
}

}  // namespace pmpl::cuda
