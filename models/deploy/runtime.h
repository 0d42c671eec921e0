// The deployment runtime: loads a `pmpl export` file and runs it, forward only, with the folded
// weights: in f32 (f32 and f16 files), or with uint8 activations and int8 weights (int8 files,
// runtime_int8.cpp). f32 files run their deployment graph (models/deploy/graph.h; every
// backbone's file carries its own, a MobileNetV2 file's is the one its layout means,
// mobilenetv2_graph.h); int8 files, MobileNetV2 only so far, are walked from the architecture
// description (models/mobilenetv2.h).
// It needs the engine's ops, nothing from training: no autograd graph, optimiser, loader or trainer.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/tensor.h"
#include "models/genotype.h"

namespace pmpl::deploy {

struct DeployModel;
struct QuantizedLayers;
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

  bool quantized() const { return quantized_ != nullptr; }

  // Logits [N, classes] for normalised f32 images [N, H, W, 3].
  Tensor run(const Tensor& images) const;
  // The same from uint8 images [N, size, size, 3] (normalised here with the file's mean/std).
  Tensor run_u8(const Tensor& images) const;
  // The f32 network with `observe(point, activation)` called wherever the int8 network holds a
  // uint8 tensor (docs/FORMAT.md, "int8"): what calibration measures. Not for int8 files.
  using Observer = std::function<void(const std::string& point, const Tensor& value)>;
  Tensor run_observed(const Tensor& images, const Observer& observe) const;

 private:
  void load(const std::string& where);
  Tensor run_int8(const Tensor& images) const;
  const Tensor& weight(const std::string& name) const;

  nlohmann::json config_;
  std::map<std::string, Tensor> tensors_;
  std::vector<std::string> classes_;
  bool meta_pooling_ = false;
  Genotype genotype_;
  int input_size_ = 224;
  float mean_[3], std_[3];
  double width_ = 1.0;
  bool small_input_ = false;
  std::unique_ptr<QuantizedLayers> quantized_;
  std::unique_ptr<GraphProgram> graph_;  // every f32 file's network
};

}  // namespace pmpl::deploy
