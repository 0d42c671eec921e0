#include "models/deploy/runtime.h"

#include <cstring>

#include "core/half.h"
#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/ops.h"
#include "models/deploy/export.h"
#include "models/deploy/format.h"
#include "models/deploy/graph.h"
#include "models/deploy/graph_int8.h"
#include "models/deploy/mobilenetv2_graph.h"

namespace pmpl::deploy {

Runtime::Runtime(const std::string& path) {
  DeployFile file;
  std::string error;
  PMPL_CHECK(read_deploy_file(path, file, error), "{}", error);
  try {
    config_ = nlohmann::json::parse(file.config_json);
  } catch (const nlohmann::json::exception& e) {
    PMPL_CHECK(false, "{}: the model description is not JSON ({})", path, e.what());
  }
  for (const DeployTensor& t : file.tensors) {
    std::vector<int64_t> shape(t.shape.begin(), t.shape.end());
    PMPL_CHECK(shape.size() <= static_cast<size_t>(Shape::kMaxRank), "{}: tensor {} has rank {}", path, t.name, shape.size());
    Tensor out = Tensor::empty(Shape(shape), DType::kF32);
    float* dst = out.data<float>();
    const uint8_t* src = file.bytes.data() + t.offset;
    const uint64_t n = t.numel();
    if (t.dtype == DeployDType::kF32) {
      std::memcpy(dst, src, 4 * n);
    } else if (t.dtype == DeployDType::kF16) {
      for (uint64_t i = 0; i < n; ++i) {
        f16 h;
        std::memcpy(&h.bits, src + 2 * i, 2);
        dst[i] = static_cast<float>(h);
      }
    } else {
      // int8 weights, held exactly; graph_int8 packs them
      for (uint64_t i = 0; i < n; ++i) dst[i] = static_cast<int8_t>(src[i]);
    }
    tensors_[t.name] = out;
  }
  load(path);
}

Runtime::Runtime(const DeployModel& model) {
  config_ = model.config;
  for (const auto& [name, t] : model.tensors) {
    Tensor out = Tensor::empty(Shape(t.shape), DType::kF32);
    float* dst = out.data<float>();
    for (size_t i = 0; i < t.data.size(); ++i) dst[i] = static_cast<float>(t.data[i]);
    tensors_[name] = out;
  }
  load("the exported model");
}

Runtime::~Runtime() = default;

void Runtime::load(const std::string& where) {
  try {
    PMPL_CHECK(config_.value("format", "") == "pmpl-model", "{}: not a pmpl model description", where);
    const std::string arch = config_.at("architecture");
    if (!config_.contains("graph")) {
      PMPL_CHECK(arch == "mobilenetv2" || arch == "mobilenetv2_mp", "{}: unknown architecture {}", where, arch);
    }
    classes_ = config_.at("classes").get<std::vector<std::string>>();
    input_size_ = config_.at("input").at("size");
    for (int c = 0; c < 3; ++c) {
      mean_[c] = config_.at("input").at("mean").at(c);
      std_[c] = config_.at("input").at("std").at(c);
    }
    // The graph says what to run (docs/FORMAT.md, "The graph"; a MobileNetV2 file's is the one its
    // layout means), in int8 where the file is quantised.
    nlohmann::json graph;
    try {
      graph = deployment_graph(config_);
    } catch (const Error& e) {
      PMPL_CHECK(false, "{}: {}", where, e.what());
    }
    quantized_ = config_.contains("quantization");
    if (quantized_) {
      try {
        activations_ = int8_activations(config_);
      } catch (const Error& e) {
        PMPL_CHECK(false, "{}: {}", where, e.what());
      }
    }
    try {
      graph_ = std::make_unique<GraphProgram>(graph, tensors_, where, quantized_ ? &activations_ : nullptr);
    } catch (const nlohmann::json::exception& e) {
      PMPL_CHECK(false, "{}: its quantisation parameters are incomplete ({}); re-export it", where, e.what());
    }
  } catch (const nlohmann::json::exception& e) {
    PMPL_CHECK(false, "{}: the model description is incomplete ({})", where, e.what());
  }
  PMPL_CHECK(!classes_.empty() && input_size_ >= 8, "{}: no classes or an implausible input size", where);
  // Every tensor the architecture reads must be there with the right rank; a dry run at a small
  // size checks it all now rather than at the first real image.
  NoGradGuard no_grad;
  try {
    run(Tensor::zeros(Shape{1, input_size_, input_size_, 3}));
  } catch (const Error& e) {
    PMPL_CHECK(false, "{}: its tensors do not fit its architecture ({}); re-export it", where, e.what());
  } catch (const nlohmann::json::exception& e) {
    PMPL_CHECK(false, "{}: its quantisation parameters are incomplete ({}); re-export it", where, e.what());
  }
}

Tensor Runtime::run(const Tensor& images) const {
  PMPL_CHECK(images.rank() == 4 && images.dim(3) == 3 && images.dtype() == DType::kF32,
             "expected f32 images [N, H, W, 3], got {} {}", dtype_name(images.dtype()), images.shape().str());
  return graph_->run(images);
}

Tensor Runtime::run_observed(const Tensor& images, const Observer& observe) const {
  PMPL_CHECK(!quantized_, "an int8 model cannot be calibrated again: calibrate its f32 export");
  PMPL_CHECK(images.rank() == 4 && images.dim(3) == 3 && images.dtype() == DType::kF32,
             "expected f32 images [N, H, W, 3], got {} {}", dtype_name(images.dtype()), images.shape().str());
  if (config_.contains("graph")) return graph_->run(images, &observe);
  // A MobileNetV2 file's points (docs/FORMAT.md, "int8") are the graph's values by node name, but
  // for two it names after the layer rather than the module (the stem's output and the pooled
  // features); the stem's input and the logits stay f32, so nothing measures them.
  const GraphProgram::Observer points = [&observe](const std::string& name, const Tensor& value) {
    if (name == "input:features.0.0" || name == "classifier.1") return;
    for (const auto& [point, node] : kLegacyInt8Points) {
      if (name == node) return observe(point, value);
    }
    observe(name, value);
  };
  return graph_->run(images, &points);
}

Tensor Runtime::run_u8(const Tensor& images) const {
  return run(ops::normalize_images(images, mean_, std_));
}

}  // namespace pmpl::deploy
