// weighted_sum: y = sum_k w[k] * x_k. The Meta-Pooling mixture without K broadcast multiplies and
// K - 1 adds, each a full temporary; the backward's K dot products share one pass over dy.
#include "engine/ops/op_util.h"
#if PMPL_CUDA
#include "cuda_kernels/elementwise.h"
#include "cuda_kernels/reduce.h"
#endif

namespace pmpl::ops {
namespace {

#if PMPL_CUDA
void weighted_sum_cuda(const Tensors& xs, const Tensor& w, Tensor& y) {
  PMPL_CHECK(xs.size() <= static_cast<size_t>(cuda::kMaxWeighted), "weighted_sum: at most {} tensors on a GPU, got {}",
             cuda::kMaxWeighted, xs.size());
  cuda::Inputs in{};
  for (size_t j = 0; j < xs.size(); ++j) in.p[j] = xs[j].data<float>();
  cuda::weighted_sum(in, static_cast<int>(xs.size()), w.data<float>(), y.data<float>(), y.numel());
}

// gw[j] = sum_i gy[i] * x_j[i]: column sums of the one-column matrices, deterministic.
Tensor weight_grad_cuda(const Tensor& gy, const Tensors& saved) {
  const auto k = static_cast<int64_t>(saved.size());
  const int64_t n = gy.numel();
  const Tensor dots = Tensor::empty(Shape{k}, DType::kF64, gy.device());
  const Tensor sums = Tensor::empty(Shape{1}, DType::kF64, gy.device());
  const Tensor scratch =
      Tensor::empty(Shape{std::max<int64_t>(1, cuda::column_sums_scratch(n, 1))}, DType::kF64, gy.device());
  for (int64_t j = 0; j < k; ++j) {
    cuda::column_sums(DType::kF32, gy.raw_data(), saved[static_cast<size_t>(j)].raw_data(), n, 1, sums.data<double>(),
                      dots.data<double>() + j, scratch.data<double>());
  }
  Tensor gw = Tensor::empty(Shape{k}, DType::kF32, gy.device());
  cuda::doubles_to(dots.data<double>(), 1.0, gw.raw_data(), DType::kF32, k);
  return gw;
}
#endif

}  // namespace

Tensor weighted_sum(const Tensors& xs, const Tensor& w) {
  PMPL_CHECK(!xs.empty(), "weighted_sum: no tensors given");
  const auto k = static_cast<int64_t>(xs.size());
  PMPL_CHECK(w.rank() == 1 && w.dim(0) == k, "weighted_sum: weights must be [{}], got {}", k, w.shape().str());
  const bool gpu = detail::check_float("weighted_sum", {&w});
  detail::check_gpu_f32("weighted_sum", w);
  for (const Tensor& x : xs) {
    detail::check_float("weighted_sum", {&w, &x});
    PMPL_CHECK(x.shape() == xs[0].shape(), "weighted_sum: shapes {} and {} differ", x.shape().str(),
               xs[0].shape().str());
  }
  Tensor y = empty_like(xs[0]);
  const int64_t n = y.numel();
  if (gpu) {
#if PMPL_CUDA
    weighted_sum_cuda(xs, w, y);
#endif
  } else dispatch_float(w.dtype(), "weighted_sum", [&](auto tag) {
    using T = decltype(tag);
    std::vector<const T*> px;
    for (const Tensor& x : xs) px.push_back(x.data<T>());
    const T* pw = w.data<T>();
    T* py = y.data<T>();
#pragma omp parallel for if (n > 65536)
    for (int64_t i0 = 0; i0 < n; i0 += 1024) {
      const int64_t end = std::min(n, i0 + 1024);
#pragma omp simd
      for (int64_t i = i0; i < end; ++i) py[i] = pw[0] * px[0][i];
      for (int64_t j = 1; j < k; ++j) {
        const T wj = pw[j];
        const T* xj = px[static_cast<size_t>(j)];
#pragma omp simd
        for (int64_t i = i0; i < end; ++i) py[i] += wj * xj[i];
      }
    }
  });
  std::vector<const Tensor*> inputs;
  for (const Tensor& x : xs) inputs.push_back(&x);
  inputs.push_back(&w);
  bool any = false;
  for (const Tensor* t : inputs) any = any || needs_grad({t});
  if (any) {
    std::vector<bool> want(xs.size());
    Tensors saved;
    for (size_t j = 0; j < xs.size(); ++j) {
      want[j] = xs[j].requires_grad();
      saved.push_back(xs[j].detach());
    }
    record("weighted_sum", inputs, {y},
           [saved, want, ws = w.detach(), grad_w = w.requires_grad(), k](const Tensors& g) -> Tensors {
             Tensors out(static_cast<size_t>(k) + 1);
             const std::vector<double> weights = ws.to(Device::cpu()).to(DType::kF64).to_vector<double>();
             for (int64_t j = 0; j < k; ++j) {
               if (want[static_cast<size_t>(j)]) out[static_cast<size_t>(j)] = scale(g[0], weights[static_cast<size_t>(j)]);
             }
             if (!grad_w) return out;
#if PMPL_CUDA
             if (ws.is_cuda()) {
               out[static_cast<size_t>(k)] = weight_grad_cuda(g[0], saved);
               return out;
             }
#endif
             Tensor gw = empty_like(ws);
             dispatch_float(ws.dtype(), "weighted_sum", [&](auto tag) {
               using T = decltype(tag);
               const int64_t n = g[0].numel();
               const T* gy = g[0].data<T>();
               constexpr int64_t kChunk = 4096;
               const int64_t chunks = (n + kChunk - 1) / kChunk;
               // Fixed chunks, added in order: the same sums for any thread count.
               const Tensor partial_buffer = detail::scratch<double>(chunks * k);
               double* partial = partial_buffer.data<double>();
#pragma omp parallel for if (n > 65536)
               for (int64_t c = 0; c < chunks; ++c) {
                 const int64_t begin = c * kChunk, end = std::min(n, begin + kChunk);
                 for (int64_t j = 0; j < k; ++j) {
                   const T* xj = saved[static_cast<size_t>(j)].data<T>();
                   double dot = 0.0;
#pragma omp simd reduction(+ : dot)
                   for (int64_t i = begin; i < end; ++i) dot += static_cast<double>(gy[i]) * static_cast<double>(xj[i]);
                   partial[c * k + j] = dot;
                 }
               }
               T* pgw = gw.data<T>();
               for (int64_t j = 0; j < k; ++j) {
                 double total = 0.0;
                 for (int64_t c = 0; c < chunks; ++c) total += partial[c * k + j];
                 pgw[j] = static_cast<T>(total);
               }
             });
             out[static_cast<size_t>(k)] = gw;
             return out;
           });
  }
  return y;
}

}  // namespace pmpl::ops
