#include "train/recalibrate.h"

#include "engine/autograd.h"

namespace pmpl {
namespace {

void collect(Module& m, std::vector<BatchNorm*>& out) {
  if (auto* bn = dynamic_cast<BatchNorm*>(&m)) out.push_back(bn);
  for (const auto& [name, child] : m.children()) collect(*child, out);
}

}  // namespace

std::vector<BatchNorm*> batchnorms(Module& root) {
  std::vector<BatchNorm*> out;
  collect(root, out);
  return out;
}

void recalibrate_batchnorm(Module& root, const std::vector<BatchNorm*>& layers, int batches,
                           const std::function<Tensor()>& next_input) {
  if (layers.empty() || batches <= 0) return;
  const bool was_training = root.training();
  root.eval();
  for (BatchNorm* bn : layers) {
    bn->train();
    bn->begin_recalibration();
  }
  {
    NoGradGuard no_grad;
    for (int i = 0; i < batches; ++i) root.forward(next_input());
  }
  for (BatchNorm* bn : layers) bn->end_recalibration();
  root.train(was_training);
}

BatchStatisticsGuard::BatchStatisticsGuard(Module& root) : layers_(batchnorms(root)) {
  for (BatchNorm* bn : layers_) bn->set_batch_statistics(true);
}

BatchStatisticsGuard::~BatchStatisticsGuard() {
  for (BatchNorm* bn : layers_) bn->set_batch_statistics(false);
}

}  // namespace pmpl
