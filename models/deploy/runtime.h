// The deployment runtime: loads a `pmpl export` file and runs it, forward only, with the folded
// weights: in f32 (f32 and f16 files), or with uint8 activations and int8 weights where the file
// is quantised (models/deploy/graph_int8.h). Every file runs its deployment graph
// (models/deploy/graph.h; every backbone's file carries its own, a MobileNetV2 file's is the one
// its layout means, mobilenetv2_graph.h).
// It needs the engine's ops, nothing from training: no autograd graph, optimiser, loader or trainer.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/tensor.h"

namespace pmpl::deploy {

struct DeployModel;
class GraphProgram;

class Runtime {
 public:
  // pmpl::Error (one line naming the file and the reason) for anything but a valid export.
  explicit Runtime(const std::string& path);
  // The same from a folded network in memory (export's calibration runs it).
  explicit Runtime(const DeployModel& model);
  ~Runtime();

  int input_size() const { return input_size_; }
  int64_t num_classes() const { return static_cast<int64_t>(classes_.size()); }
  const std::vector<std::string>& classes() const { return classes_; }
  const nlohmann::json& config() const { return config_; }
  const float* mean() const { return mean_; }
  const float* stddev() const { return std_; }

  bool quantized() const { return quantized_; }

  // Logits [N, classes] for normalised f32 images [N, H, W, 3].
  Tensor run(const Tensor& images) const;
  // The same from uint8 images [N, size, size, 3] (normalised here with the file's mean/std).
  Tensor run_u8(const Tensor& images) const;
  // The f32 network with `observe(point, activation)` called for every value of its graph, and
  // for what each conv, depthwise conv and linear node reads ("input:" + name), by the names int8
  // gives them (docs/FORMAT.md, "int8"): what calibration measures. Not for int8 files.
  using Observer = std::function<void(const std::string& point, const Tensor& value)>;
  Tensor run_observed(const Tensor& images, const Observer& observe) const;

 private:
  void load(const std::string& where);

  nlohmann::json config_;
  std::map<std::string, Tensor> tensors_;
  std::vector<std::string> classes_;
  int input_size_ = 224;
  float mean_[3], std_[3];
  bool quantized_ = false;
  nlohmann::json activations_;  // an int8 file's, by graph node name
  std::unique_ptr<GraphProgram> graph_;
};

}  // namespace pmpl::deploy
