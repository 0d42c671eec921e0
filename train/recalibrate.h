// Batchnorm statistics re-estimated after the network under them changed: when an enhancer is
// fixed, its batchnorm's running statistics were gathered for the search's mixture, not for the
// op that now runs alone, and an evaluation right after the fix would read them (docs/PMPL.md).
#pragma once

#include <functional>
#include <vector>

#include "layers/layers.h"

namespace pmpl {

// Every BatchNorm below `root`, in registration order.
std::vector<BatchNorm*> batchnorms(Module& root);

// Runs `root` forward, without gradients, on `batches` inputs from `next_input`: in evaluation
// mode (dropout draws nothing, the other batchnorms use their running statistics) except `layers`,
// which normalise with each batch's statistics and average them into their running statistics.
// The modes are restored afterwards.
void recalibrate_batchnorm(Module& root, const std::vector<BatchNorm*>& layers, int batches,
                           const std::function<Tensor()>& next_input);

// While it lives, every batchnorm below `root` normalises with each batch's own statistics in
// evaluation mode too (BatchNorm::set_batch_statistics), so a network whose running statistics
// lag its weights is scored as it trains.
class BatchStatisticsGuard {
 public:
  explicit BatchStatisticsGuard(Module& root);
  ~BatchStatisticsGuard();
  BatchStatisticsGuard(const BatchStatisticsGuard&) = delete;
  BatchStatisticsGuard& operator=(const BatchStatisticsGuard&) = delete;

 private:
  std::vector<BatchNorm*> layers_;
};

}  // namespace pmpl
