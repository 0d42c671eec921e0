// The deployment runtime: loads a `pmpl export` file and runs it, forward only, with the folded
// weights. It needs the engine's ops and the architecture description (models/mobilenetv2.h),
// nothing from training: no autograd graph is built, no optimiser, loader or trainer code.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/ops.h"
#include "engine/tensor.h"
#include "models/genotype.h"

namespace pmpl::deploy {

class Runtime {
 public:
  // pmpl::Error (one line naming the file and the reason) for anything but a valid export.
  explicit Runtime(const std::string& path);

  int input_size() const { return input_size_; }
  int64_t num_classes() const { return static_cast<int64_t>(classes_.size()); }
  const std::vector<std::string>& classes() const { return classes_; }
  const nlohmann::json& config() const { return config_; }
  const float* mean() const { return mean_; }
  const float* stddev() const { return std_; }

  // Logits [N, classes] for normalised f32 images [N, H, W, 3].
  Tensor run(const Tensor& images) const;
  // The same from uint8 images [N, size, size, 3] (normalised here with the file's mean/std).
  Tensor run_u8(const Tensor& images) const;

 private:
  const Tensor& weight(const std::string& name) const;
  Tensor conv1x1(const Tensor& x, const std::string& conv,
                 ops::ChannelActivation act = ops::ChannelActivation::kNone) const;

  nlohmann::json config_;
  std::map<std::string, Tensor> tensors_;
  std::vector<std::string> classes_;
  bool meta_pooling_ = false;
  Genotype genotype_;
  int input_size_ = 224;
  float mean_[3], std_[3];
  double width_ = 1.0;
  bool small_input_ = false;
};

}  // namespace pmpl::deploy
