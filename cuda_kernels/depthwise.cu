#include "cuda_kernels/depthwise.h"

#include <cstdint>
#include <initializer_list>
#include <type_traits>

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

// Channels per thread: V consecutive channels move as one 16-byte access (4 f32, 8 bf16/f16) and
// share one index computation; 1 where C (or a pointer) does not allow it.
template <class S>
constexpr int kVector = 16 / sizeof(S);

// One thread per V channels of a pixel, channel groups fastest (coalesced loads of every tap):
// of an output pixel (forward, from x) or, with kInputGrad, of an input pixel (backward-data: it
// gathers from dy at the outputs whose windows cover it).
template <int V, bool kInputGrad, class S>
__global__ void dw_pixels_kernel(const S* in, const S* wt, S* out, DwShape g) {
  const int64_t groups = g.c / V, rows = kInputGrad ? g.h : g.ho, cols = kInputGrad ? g.w : g.wo;
  PMPL_FOR_EACH(i, g.n * rows * cols * groups) {
    const int64_t c = (i % groups) * V, r = i / groups, col = r % cols, row = (r / cols) % rows, n = r / (cols * rows);
    float values[V];
    if constexpr (kInputGrad) kernels::dw_input_grads<V>(in, wt, g, n, row, col, c, values);
    else kernels::dw_outputs<V>(in, wt, g, n, row, col, c, values);
    kernels::store_channels<V>(out, r * g.c + c, values);
  }
}

// grid.y = chunk: one thread per (tap, V channels) sums the chunk's rows.
template <int V, class S>
__global__ void dw_weight_chunks_kernel(const S* x, const S* gy, float* partials, DwShape g) {
  const int64_t groups = g.c / V, per_chunk = g.k * g.k * g.c;
  const int64_t chunk = blockIdx.y;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < g.k * g.k * groups;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c = (i % groups) * V, tap = i / groups;
    float acc[V];
    kernels::dw_weight_grad_chunks<V>(x, gy, g, chunk, tap / g.k, tap % g.k, c, acc);
    kernels::store_channels<V>(partials, chunk * per_chunk + tap * g.c + c, acc);
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

// Runs f(std::integral_constant<int, V>) with the widest channel group that C and the pointers
// allow: tensors of S aligned for V elements (16 bytes), f32 scratch for V floats (16 or 32
// bytes). Fresh allocations always are; views may not be.
template <class S, class F>
void with_vector(int64_t c, std::initializer_list<const void*> tensors, std::initializer_list<const float*> scratch,
                 F&& f) {
  constexpr int V = kVector<S>;
  bool aligned = c % V == 0;
  for (const void* p : tensors) aligned = aligned && reinterpret_cast<uintptr_t>(p) % (sizeof(S) * V) == 0;
  for (const float* p : scratch) aligned = aligned && reinterpret_cast<uintptr_t>(p) % (sizeof(float) * V) == 0;
  if (aligned) f(std::integral_constant<int, V>{});
  else f(std::integral_constant<int, 1>{});
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
    with_vector<S>(g.c, {x, wt, y}, {}, [&](auto v) {
      constexpr int V = decltype(v)::value;
      dw_pixels_kernel<V, false><<<blocks_for(count / V), kThreads>>>(
          static_cast<const S*>(x), static_cast<const S*>(wt), static_cast<S*>(y), g);
    });
  });
  check_launch();
}

void dw_backward_data(DType dtype, const void* gy, const void* wt, void* gx, const DwShape& g) {
  const int64_t count = g.n * g.h * g.w * g.c;
  if (count == 0) return;
  dispatch_storage(dtype, "depthwise_conv2d", [&](auto tag) {
    using S = decltype(tag);
    with_vector<S>(g.c, {gy, wt, gx}, {}, [&](auto v) {
      constexpr int V = decltype(v)::value;
      dw_pixels_kernel<V, true><<<blocks_for(count / V), kThreads>>>(
          static_cast<const S*>(gy), static_cast<const S*>(wt), static_cast<S*>(gx), g);
    });
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
    with_vector<S>(g.c, {x, gy}, {partials}, [&](auto v) {
      constexpr int V = decltype(v)::value;
      const unsigned tiles = static_cast<unsigned>((per_chunk / V + kThreads - 1) / kThreads);
      dw_weight_chunks_kernel<V><<<dim3(tiles, static_cast<unsigned>(chunks)), kThreads>>>(
          static_cast<const S*>(x), static_cast<const S*>(gy), partials, g);
    });
    check_launch();
    dw_weight_sum_kernel<<<blocks_for(per_chunk), kThreads>>>(partials, static_cast<S*>(gwt), chunks, per_chunk);
  });
  check_launch();
}

}  // namespace pmpl::cuda
