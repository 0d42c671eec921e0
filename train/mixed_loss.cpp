#include "train/mixed_loss.h"

#include "engine/ops.h"

namespace pmpl {

Tensor mixed_cross_entropy(const Tensor& logits, const Tensor& labels, const Tensor& partner_labels, double lambda,
                           double label_smoothing) {
  return ops::add(ops::scale(ops::cross_entropy(logits, labels, label_smoothing), lambda),
                  ops::scale(ops::cross_entropy(logits, partner_labels, label_smoothing), 1.0 - lambda));
}

}  // namespace pmpl
