#include "cuda_kernels/depthwise.h"

#include "engine/cuda_check.h"

namespace pmpl::cuda {
namespace {

using kernels::DwShape;
constexpr int kThreads = 256;

int blocks_for(int64_t count) { return static_cast<int>((count + kThreads - 1) / kThreads); }

__global__ void dw_transpose_kernel(const float* src, float* dst, int64_t c, int64_t kk, bool to_channels_last) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= c * kk) return;
  const int64_t ch = i / kk, t = i % kk;
  if (to_channels_last) dst[t * c + ch] = src[ch * kk + t];
  else dst[ch * kk + t] = src[t * c + ch];
}

// One thread per output element, channels fastest (coalesced loads of every tap).
__global__ void dw_forward_kernel(const float* x, const float* wt, float* y, DwShape g) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= g.n * g.ho * g.wo * g.c) return;
  const int64_t c = i % g.c, r = i / g.c, ow = r % g.wo, oh = (r / g.wo) % g.ho, n = r / (g.wo * g.ho);
  y[i] = kernels::dw_output(x, wt, g, n, oh, ow, c);
}

// One thread per input element: it gathers from the outputs whose windows cover it.
__global__ void dw_backward_data_kernel(const float* gy, const float* wt, float* gx, DwShape g) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= g.n * g.h * g.w * g.c) return;
  const int64_t c = i % g.c, r = i / g.c, iw = r % g.w, ih = (r / g.w) % g.h, n = r / (g.w * g.h);
  gx[i] = kernels::dw_input_grad(gy, wt, g, n, ih, iw, c);
}

// grid.y = chunk: one thread per (tap, channel) sums the chunk's rows.
__global__ void dw_weight_chunks_kernel(const float* x, const float* gy, float* partials, DwShape g) {
  const int64_t per_chunk = g.k * g.k * g.c;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= per_chunk) return;
  const int64_t chunk = blockIdx.y, c = i % g.c, tap = i / g.c;
  partials[chunk * per_chunk + i] = kernels::dw_weight_grad_chunk(x, gy, g, chunk, tap / g.k, tap % g.k, c);
}

// The chunks added in order: the same sums on every run.
__global__ void dw_weight_sum_kernel(const float* partials, float* gwt, int64_t chunks, int64_t per_chunk) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= per_chunk) return;
  float acc = 0.0f;
  for (int64_t chunk = 0; chunk < chunks; ++chunk) acc += partials[chunk * per_chunk + i];
  gwt[i] = acc;
}

}  // namespace

void dw_transpose_weight(const float* src, float* dst, int64_t c, int64_t kk, bool to_channels_last) {
  if (c * kk == 0) return;
  dw_transpose_kernel<<<blocks_for(c * kk), kThreads>>>(src, dst, c, kk, to_channels_last);
  CUDA_CHECK(cudaGetLastError());
}

void dw_forward(const float* x, const float* wt, float* y, const DwShape& g) {
  const int64_t count = g.n * g.ho * g.wo * g.c;
  if (count == 0) return;
  dw_forward_kernel<<<blocks_for(count), kThreads>>>(x, wt, y, g);
  CUDA_CHECK(cudaGetLastError());
}

void dw_backward_data(const float* gy, const float* wt, float* gx, const DwShape& g) {
  const int64_t count = g.n * g.h * g.w * g.c;
  if (count == 0) return;
  dw_backward_data_kernel<<<blocks_for(count), kThreads>>>(gy, wt, gx, g);
  CUDA_CHECK(cudaGetLastError());
}

void dw_backward_weight(const float* x, const float* gy, float* gwt, float* partials, const DwShape& g) {
  const int64_t per_chunk = g.k * g.k * g.c, chunks = kernels::dw_weight_chunks(g);
  if (per_chunk == 0) return;
  if (chunks == 0) {
    CUDA_CHECK(cudaMemset(gwt, 0, static_cast<size_t>(per_chunk) * sizeof(float)));
    return;
  }
  dw_weight_chunks_kernel<<<dim3(static_cast<unsigned>(blocks_for(per_chunk)), static_cast<unsigned>(chunks)), kThreads>>>(
      x, gy, partials, g);
  CUDA_CHECK(cudaGetLastError());
  dw_weight_sum_kernel<<<blocks_for(per_chunk), kThreads>>>(partials, gwt, chunks, per_chunk);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace pmpl::cuda
