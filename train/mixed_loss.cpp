#include "train/mixed_loss.h"

#include <vector>

#include "engine/ops.h"

namespace pmpl {

Tensor mixed_cross_entropy(const Tensor& logits, const Tensor& labels, const Tensor& partner_labels, double lambda,
                           double label_smoothing) {
  return ops::add(ops::scale(ops::cross_entropy(logits, labels, label_smoothing), lambda),
                  ops::scale(ops::cross_entropy(logits, partner_labels, label_smoothing), 1.0 - lambda));
}

Tensor mixed_cross_entropy_rows(const Tensor& logits, const Tensor& labels, const Tensor& partner_labels,
                                const Tensor& row_lambdas, double label_smoothing) {
  const int64_t rows = logits.dim(0), classes = logits.dim(1);
  const std::vector<int64_t> y = labels.to_vector<int64_t>(), partner = partner_labels.to_vector<int64_t>();
  const std::vector<float> lambdas = row_lambdas.to_vector<float>();
  // timm's one_hot: off = smoothing / C and on = 1 - smoothing + off, stored as float32.
  const double off_value = label_smoothing / static_cast<double>(classes);
  const auto off = static_cast<float>(off_value), on = static_cast<float>(1.0 - label_smoothing + off_value);
  std::vector<float> target(static_cast<size_t>(rows * classes));
  for (int64_t i = 0; i < rows; ++i) {
    const float lam = lambdas[static_cast<size_t>(i)], rest = 1.0f - lam;
    for (int64_t c = 0; c < classes; ++c) {
      target[static_cast<size_t>(i * classes + c)] =
          (c == y[static_cast<size_t>(i)] ? on : off) * lam + (c == partner[static_cast<size_t>(i)] ? on : off) * rest;
    }
  }
  // Mixed precision's bf16 / f16 logits are taken in float32, as cross_entropy takes them.
  const bool half = logits.dtype() == DType::kBF16 || logits.dtype() == DType::kF16;
  const Tensor x = half ? ops::cast(logits, DType::kF32) : logits;
  Tensor t = Tensor::from_vector(target, Shape{rows, classes}).to(x.device());
  if (t.dtype() != x.dtype()) t = ops::cast(t, x.dtype());
  return ops::mean(ops::sum(ops::scale(ops::mul(t, ops::log_softmax(x)), -1.0), {1}));
}

}  // namespace pmpl
