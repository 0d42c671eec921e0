#include "train/evaluate.h"

#include <algorithm>
#include <cmath>

#include "data/loader.h"
#include "engine/autograd.h"
#include "engine/ops.h"
#include "train/data_parallel.h"

namespace pmpl {

int64_t count_top_k(const Tensor& logits, const Tensor& labels, int k) {
  const Tensor l = logits.to(Device::cpu()).to(DType::kF32);
  const Tensor host_labels = labels.to(Device::cpu());
  const int64_t n = l.dim(0), classes = l.dim(1);
  const float* p = l.data<float>();
  const int64_t* y = host_labels.data<int64_t>();
  int64_t hits = 0;
  for (int64_t r = 0; r < n; ++r) {
    const float* row = p + r * classes;
    const float target = row[y[r]];
    // The label is in the top k when fewer than k classes beat it (ties: earlier classes win). A
    // row with a NaN or infinite logit is a miss: NaN compares false, and would make it a hit.
    int64_t better = 0;
    bool finite = true;
    for (int64_t c = 0; c < classes; ++c) {
      better += row[c] > target || (row[c] == target && c < y[r]);
      finite = finite && std::isfinite(row[c]);
    }
    hits += finite && better < k;
  }
  return hits;
}

EvalResult evaluate_with(const std::function<Tensor(const Tensor&)>& forward, const data::ImageFolder& split,
                         const EvalOptions& options) {
  data::LoaderOptions lo;
  lo.batch_size = options.batch_size;
  lo.image_size = options.image_size;
  lo.workers = options.workers;
  lo.train = false;
  lo.shuffle = false;
  lo.drop_last = false;
  if (options.limit > 0 && options.limit < split.size()) {
    // Evenly spread over the (class-sorted) split, so every class is represented.
    for (int64_t i = 0; i < options.limit; ++i) lo.subset.push_back(i * split.size() / options.limit);
  }
  if (options.comm != nullptr) {
    lo.rank = options.comm->rank();
    lo.world = options.comm->world();
  }
  data::Loader loader(split, lo);
  loader.start_epoch(0);
  NoGradGuard no_grad;
  EvalResult r;
  int64_t top1 = 0, top5 = 0;
  double loss_sum = 0.0;
  while (auto batch = loader.next()) {
    // One copy of the logits per batch (on a GPU, the batch's only wait); loss and counts on the host.
    const Tensor logits = forward(batch->images).to(Device::cpu());
    const int64_t n = logits.dim(0);
    loss_sum += ops::cross_entropy(logits, batch->labels, options.label_smoothing).item() * static_cast<double>(n);
    top1 += count_top_k(logits, batch->labels, 1);
    top5 += count_top_k(logits, batch->labels, std::min<int>(5, static_cast<int>(logits.dim(1))));
    r.images += n;
  }
  if (options.comm != nullptr) {
    const std::vector<double> sums = sum_over_processes(
        {static_cast<double>(top1), static_cast<double>(top5), loss_sum, static_cast<double>(r.images)}, *options.comm);
    top1 = std::llround(sums[0]);
    top5 = std::llround(sums[1]);
    loss_sum = sums[2];
    r.images = std::llround(sums[3]);
  }
  if (r.images > 0) {
    r.top1 = static_cast<double>(top1) / static_cast<double>(r.images);
    r.top5 = static_cast<double>(top5) / static_cast<double>(r.images);
    r.loss = loss_sum / static_cast<double>(r.images);
  }
  return r;
}

EvalResult evaluate(Network& model, const data::ImageFolder& split, const EvalOptions& options) {
  const bool was_training = model.training();
  model.eval();
  const std::vector<NamedParameter> params = model.parameters();
  const Device device = params.empty() ? Device::cpu() : params[0].tensor.device();
  const EvalResult r = evaluate_with(
      [&](const Tensor& images) {
        return model.forward(ops::normalize_images(images.to(device), kImageMean, kImageStd));
      },
      split, options);
  model.train(was_training);
  return r;
}

}  // namespace pmpl
