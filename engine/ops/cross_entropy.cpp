// Softmax cross-entropy with label smoothing, fused: the gradient is (softmax - q) / N, cheaper
// and more accurate than going through log_softmax.
#include <cmath>

#include "core/kernels/softmax.h"
#include "engine/ops/op_util.h"
#if PMPL_CUDA
#include "cuda_kernels/reduce.h"
#endif

namespace pmpl::ops {

Tensor cross_entropy(const Tensor& logits, const Tensor& labels, double label_smoothing) {
  const bool gpu = detail::check_float("cross_entropy", {&logits});
  detail::check_gpu_f32("cross_entropy", logits);
  detail::check_rank("cross_entropy", "logits", logits, 2, "N, K");
  PMPL_CHECK(labels.dtype() == DType::kI64 && labels.rank() == 1 && labels.dim(0) == logits.dim(0),
             "cross_entropy: labels must be i64 [{}], got {} {}", logits.dim(0),
             dtype_name(labels.dtype()), labels.shape().str());
  PMPL_CHECK(labels.device().is_cpu() || labels.device() == logits.device(),
             "cross_entropy: labels on {} but logits on {}; move the labels to the CPU or the logits' device",
             labels.device().str(), logits.device().str());
  PMPL_CHECK(label_smoothing >= 0.0 && label_smoothing <= 1.0,
             "cross_entropy: label smoothing {} is outside [0, 1]", label_smoothing);
  const int64_t n = logits.dim(0), k = logits.dim(1);
  PMPL_CHECK(n > 0 && k > 0, "cross_entropy: empty logits {}", logits.shape().str());
  // Host labels are checked here. Labels already on the GPU are not copied back for it (that
  // would stall the host in the middle of a step): the kernel turns an out-of-range label into a
  // NaN loss, which the trainer reports.
  if (labels.device().is_cpu()) {
    const int64_t* y = labels.data<int64_t>();
    for (int64_t i = 0; i < n; ++i) {
      PMPL_CHECK(y[i] >= 0 && y[i] < k, "cross_entropy: label {} at position {} is outside [0, {})", y[i], i, k);
    }
  }
  const double eps = label_smoothing;
  // Probabilities are kept for the backward; the loss sums in double.
  Tensor probs = empty_like(logits);
  Tensor loss = Tensor::empty(Shape{}, logits.dtype(), logits.device());
  if (gpu) {
#if PMPL_CUDA
    const Tensor device_labels = labels.to(logits.device());
    const Tensor row_loss = Tensor::empty(Shape{n}, DType::kF64, logits.device());
    cuda::cross_entropy(logits.data<float>(), device_labels.data<int64_t>(), n, k, eps, probs.data<float>(),
                        loss.data<float>(), row_loss.data<double>());
    if (needs_grad({&logits})) {
      record("cross_entropy", {&logits}, {loss}, [probs, device_labels, eps, n, k](const Tensors& g) -> Tensors {
        Tensor gx = empty_like(probs);
        cuda::cross_entropy_backward(probs.data<float>(), device_labels.data<int64_t>(), g[0].data<float>(), n, k, eps,
                                     gx.data<float>());
        return {gx};
      });
    }
#endif
    return loss;
  }
  dispatch_float(logits.dtype(), "cross_entropy", [&](auto tag) {
    using T = decltype(tag);
    const T* x = logits.data<T>();
    const int64_t* y = labels.data<int64_t>();
    T* p = probs.data<T>();
    std::vector<double> row_loss(static_cast<size_t>(n));
#pragma omp parallel for if (n * k > 16384)
    for (int64_t r = 0; r < n; ++r) {
      row_loss[static_cast<size_t>(r)] = kernels::cross_entropy_row(x + r * k, y[r], k, eps, p + r * k);
    }
    double total = 0.0;
    for (double v : row_loss) total += v;
    *loss.data<T>() = static_cast<T>(total / static_cast<double>(n));
  });
  if (needs_grad({&logits})) {
    record("cross_entropy", {&logits}, {loss},
           [probs, labels, eps, n, k](const Tensors& g) -> Tensors {
             Tensor gx = empty_like(probs);
             dispatch_float(probs.dtype(), "cross_entropy", [&](auto tag) {
               using T = decltype(tag);
               const T* p = probs.data<T>();
               const int64_t* y = labels.data<int64_t>();
               T* d = gx.data<T>();
               const T scale_by = static_cast<T>(*g[0].data<T>() / static_cast<T>(n));
               const T smooth = static_cast<T>(eps / static_cast<double>(k));
               const T hit = static_cast<T>(1.0 - eps);
#pragma omp parallel for if (n * k > 16384)
               for (int64_t r = 0; r < n; ++r) {
                 for (int64_t j = 0; j < k; ++j) {
                   d[r * k + j] = kernels::cross_entropy_grad(p[r * k + j], y[r], j, k, smooth, hit, scale_by);
                 }
               }
             });
             return {gx};
           });
  }
  return loss;
}

}  // namespace pmpl::ops
