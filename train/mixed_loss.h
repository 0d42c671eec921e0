// The loss of a mixup or cutmix batch (data/mixup.h).
#pragma once

#include "engine/tensor.h"

namespace pmpl {

// timm's SoftTargetCrossEntropy against lambda * smooth(labels) + (1 - lambda) * smooth(partner_labels)
// (mixup_target: each one-hot smoothed as cross_entropy's label_smoothing does), computed as the
// two cross-entropies that target is linear in; the mean over the batch.
Tensor mixed_cross_entropy(const Tensor& logits, const Tensor& labels, const Tensor& partner_labels, double lambda,
                           double label_smoothing);

// The same with a lambda per row (timm's pair and elem modes): the target built as timm's
// mixup_target builds it in float32 (host tensors labels, partner_labels, row_lambdas), then
// SoftTargetCrossEntropy, -sum(target * log_softmax(logits)) averaged over the rows.
Tensor mixed_cross_entropy_rows(const Tensor& logits, const Tensor& labels, const Tensor& partner_labels,
                                const Tensor& row_lambdas, double label_smoothing);

}  // namespace pmpl
