#include "cuda_kernels/depthwise.h"

#include "cuda_kernels/launch.cuh"

namespace pmpl::cuda {
namespace {

using kernels::DwShape;

template <class S>
__global__ void dw_transpose_kernel(const S* src, S* dst, int64_t c, int64_t kk, bool to_channels_last) {
  PMPL_FOR_EACH(i, c * kk) {
    const int64_t ch = i / kk, t = i % kk;
    if (to_channels_last) dst[t * c + ch] = src[ch * kk + t];
    else dst[ch * kk + t] = src[t * c + ch];
  }
}

// One thread per output element, channels fastest (coalesced loads of every tap).
template <class S>
__global__ void dw_forward_kernel(const S* x, const S* wt, S* y, DwShape g) {
  PMPL_FOR_EACH(i, g.n * g.ho * g.wo * g.c) {
    const int64_t c = i % g.c, r = i / g.c, ow = r % g.wo, oh = (r / g.wo) % g.ho, n = r / (g.wo * g.ho);
    store(y, i, kernels::dw_output(x, wt, g, n, oh, ow, c));
  }
}

// One thread per input element: it gathers from the outputs whose windows cover it.
template <class S>
__global__ void dw_backward_data_kernel(const S* gy, const S* wt, S* gx, DwShape g) {
  PMPL_FOR_EACH(i, g.n * g.h * g.w * g.c) {
    const int64_t c = i % g.c, r = i / g.c, iw = r % g.w, ih = (r / g.w) % g.h, n = r / (g.w * g.h);
    store(gx, i, kernels::dw_input_grad(gy, wt, g, n, ih, iw, c));
  }
}

// grid.y = chunk: one thread per (tap, channel) sums the chunk's rows.
template <class S>
__global__ void dw_weight_chunks_kernel(const S* x, const S* gy, float* partials, DwShape g) {
  const int64_t per_chunk = g.k * g.k * g.c;
  const int64_t chunk = blockIdx.y;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < per_chunk;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c = i % g.c, tap = i / g.c;
    partials[chunk * per_chunk + i] = kernels::dw_weight_grad_chunk(x, gy, g, chunk, tap / g.k, tap % g.k, c);
  }
}

// The chunks added in order: the same sums on every run.
template <class S>
__global__ void dw_weight_sum_kernel(const float* partials, S* gwt, int64_t chunks, int64_t per_chunk) {
  PMPL_FOR_EACH(i, per_chunk) {
    float acc = 0.0f;
    for (int64_t chunk = 0; chunk < chunks; ++chunk) acc += partials[chunk * per_chunk + i];
    store(gwt, i, acc);
  }
}

}  // namespace

void dw_transpose_weight(DType dtype, const void* src, void* dst, int64_t c, int64_t kk, bool to_channels_last) {
  if (c * kk == 0) return;
  dispatch_storage(dtype, "depthwise_conv2d", [&](auto tag) {
    using S = decltype(tag);
    dw_transpose_kernel<<<blocks_for(c * kk), kThreads>>>(static_cast<const S*>(src), static_cast<S*>(dst), c, kk,
                                                          to_channels_last);
  });
  check_launch();
}

void dw_forward(DType dtype, const void* x, const void* wt, void* y, const DwShape& g) {
  const int64_t count = g.n * g.ho * g.wo * g.c;
  if (count == 0) return;
  dispatch_storage(dtype, "depthwise_conv2d", [&](auto tag) {
    using S = decltype(tag);
    dw_forward_kernel<<<blocks_for(count), kThreads>>>(static_cast<const S*>(x), static_cast<const S*>(wt),
                                                       static_cast<S*>(y), g);
  });
  check_launch();
}

void dw_backward_data(DType dtype, const void* gy, const void* wt, void* gx, const DwShape& g) {
  const int64_t count = g.n * g.h * g.w * g.c;
  if (count == 0) return;
  dispatch_storage(dtype, "depthwise_conv2d", [&](auto tag) {
    using S = decltype(tag);
    dw_backward_data_kernel<<<blocks_for(count), kThreads>>>(static_cast<const S*>(gy), static_cast<const S*>(wt),
                                                             static_cast<S*>(gx), g);
  });
  check_launch();
}

void dw_backward_weight(DType dtype, const void* x, const void* gy, void* gwt, float* partials, const DwShape& g) {
  const int64_t per_chunk = g.k * g.k * g.c, chunks = kernels::dw_weight_chunks(g);
  if (per_chunk == 0) return;
  if (chunks == 0) {
    CUDA_CHECK(cudaMemsetAsync(gwt, 0, static_cast<size_t>(per_chunk) * dtype_size(dtype)));
    return;
  }
  dispatch_storage(dtype, "depthwise_conv2d", [&](auto tag) {
    using S = decltype(tag);
    const unsigned tiles = static_cast<unsigned>((per_chunk + kThreads - 1) / kThreads);
    dw_weight_chunks_kernel<<<dim3(tiles, static_cast<unsigned>(chunks)), kThreads>>>(
        static_cast<const S*>(x), static_cast<const S*>(gy), partials, g);
    check_launch();
    dw_weight_sum_kernel<<<blocks_for(per_chunk), kThreads>>>(partials, static_cast<S*>(gwt), chunks, per_chunk);
  });
  check_launch();
}

}  // namespace pmpl::cuda
