// Top-1 / top-5 accuracy and mean loss of a network on a split, evaluation transform, every image
// once (the last batch may be smaller).
#pragma once

#include <cstdint>
#include <functional>

#include "data/image_folder.h"
#include "engine/comm.h"
#include "engine/tensor.h"
#include "models/network.h"

namespace pmpl {

// ImageNet's statistics, applied by the model's first step to the loader's bytes.
inline constexpr float kImageMean[3] = {0.485f, 0.456f, 0.406f};
inline constexpr float kImageStd[3] = {0.229f, 0.224f, 0.225f};

struct EvalResult {
  int64_t images = 0;
  double top1 = 0.0;  // fractions
  double top5 = 0.0;
  double loss = 0.0;
};

struct EvalOptions {
  int64_t batch_size = 128;
  int image_size = 224;
  int workers = 2;
  double label_smoothing = 0.0;
  int64_t limit = 0;  // evaluate `limit` images spread evenly over the split (0: all)
  // Data-parallel: each process evaluates every world-th image and the counts are summed, so
  // every process returns the result over the whole split. Null: this process alone.
  Communicator* comm = nullptr;
};

EvalResult evaluate(Network& model, const data::ImageFolder& split, const EvalOptions& options);
// The same for any forward: `forward` maps the loader's uint8 images [N, H, W, 3] to logits
// (a deployment file's runtime, `pmpl eval --deploy`).
EvalResult evaluate_with(const std::function<Tensor(const Tensor&)>& forward, const data::ImageFolder& split,
                         const EvalOptions& options);

// How many of `labels` are among the top-k of each row of `logits` [N, K] (ties count for the
// earlier class, as torch.topk).
int64_t count_top_k(const Tensor& logits, const Tensor& labels, int k);

}  // namespace pmpl
