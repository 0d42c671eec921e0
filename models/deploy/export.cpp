#include "models/deploy/export.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "core/half.h"
#include "models/deploy/format.h"
#include "models/deploy/graph.h"

namespace pmpl::deploy {
namespace {

constexpr double kBnEps = 1e-5;
constexpr float kMean[3] = {0.485f, 0.456f, 0.406f};
constexpr float kStd[3] = {0.229f, 0.224f, 0.225f};

std::vector<double> values(const std::map<std::string, Tensor>& state, const std::string& name) {
  auto it = state.find(name);
  PMPL_ASSERT(it != state.end(), "export: {} is missing", name);
  return it->second.to(DType::kF64).to_vector<double>();
}

// The conv `conv` (weight [Cout, ...], optional bias) with the batchnorm `bn` after it folded in.
std::pair<FoldedTensor, FoldedTensor> fold(const std::map<std::string, Tensor>& state, const std::string& conv,
                               const std::string& bn) {
  const Tensor& w = state.at(conv + ".weight");
  std::vector<double> weight = values(state, conv + ".weight");
  const std::vector<double> gamma = values(state, bn + ".weight"), beta = values(state, bn + ".bias");
  const std::vector<double> mean = values(state, bn + ".running_mean"), var = values(state, bn + ".running_var");
  const size_t out = gamma.size(), per = weight.size() / out;
  std::vector<double> bias(out, 0.0);
  if (state.count(conv + ".bias")) bias = values(state, conv + ".bias");
  for (size_t o = 0; o < out; ++o) {
    const double s = gamma[o] / std::sqrt(var[o] + kBnEps);
    for (size_t i = 0; i < per; ++i) weight[o * per + i] *= s;
    bias[o] = beta[o] + (bias[o] - mean[o]) * s;
  }
  return {{w.shape().vec(), weight}, {{static_cast<int64_t>(out)}, bias}};
}

// MobileNetV2's layout (docs/FORMAT.md, "Tensors"), which the runtime walks from mobilenetv2_spec
// and int8 and ONNX export read: each batchnorm folded into the conv its name follows.
void fold_mobilenetv2(const Network& model, std::map<std::string, FoldedTensor>& out) {
  std::map<std::string, Tensor> state;
  for (const NamedTensor& t : model.state()) state[t.name] = t.tensor;
  auto add_fold = [&](const std::string& conv, const std::string& bn) {
    auto [w, b] = fold(state, conv, bn);
    out[conv + ".weight"] = std::move(w);
    out[conv + ".bias"] = std::move(b);
  };
  for (const auto& [name, t] : state) {
    const std::string suffix = ".running_mean";
    if (name.size() <= suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) continue;
    const std::string bn = name.substr(0, name.size() - suffix.size());
    const size_t dot = bn.rfind('.');
    const std::string parent = bn.substr(0, dot), leaf = bn.substr(dot + 1);
    if (leaf == "bn1") {
      add_fold(parent + ".conv1", bn);  // strip attention
    } else if (leaf == "bn") {
      // The enhancer's batchnorm follows a pooling sum: kept as scale and shift.
      const std::vector<double> gamma = values(state, bn + ".weight"), beta = values(state, bn + ".bias");
      const std::vector<double> mean = values(state, bn + ".running_mean"), var = values(state, bn + ".running_var");
      FoldedTensor scale{{static_cast<int64_t>(gamma.size())}, {}}, shift = scale;
      for (size_t c = 0; c < gamma.size(); ++c) {
        const double s = gamma[c] / std::sqrt(var[c] + kBnEps);
        scale.data.push_back(s);
        shift.data.push_back(beta[c] - mean[c] * s);
      }
      out[parent + ".scale"] = scale;
      out[parent + ".shift"] = shift;
    } else {
      // In a Sequential, the conv is the previous child ("features.3.conv.3" <- "...conv.2").
      add_fold(parent + "." + std::to_string(std::stoi(leaf) - 1), bn);
    }
  }
  for (const auto& [name, t] : state) {
    const bool strip_conv = name.find(".strip.conv_") != std::string::npos;
    if (name.rfind("classifier.", 0) == 0 || strip_conv) out[name] = {t.shape().vec(), values(state, name)};
  }
}

}  // namespace

DeployModel fold_model(const Network& model, const ExportOptions& options) {
  PMPL_ASSERT(options.architecture == model.name(), "export: the options name {}, the network is {}",
              options.architecture, model.name());
  for (const auto& [name, e] : model.enhancers()) {
    PMPL_CHECK(e->fixed(), "{} is still searching: finish the search, or export with --fix-remaining to fix "
                           "it (and any other open enhancer) to its most probable op", name);
  }
  DeployModel folded;
  nlohmann::json graph;
  if (model.name() == "mobilenetv2" || model.name() == "mobilenetv2_mp") {
    fold_mobilenetv2(model, folded.tensors);
  } else {
    Trace trace;
    const int output = model.trace(trace, Trace::kInput, "");
    graph = fold_trace(trace, output, folded.tensors);
  }
  nlohmann::json config = {{"format", "pmpl-model"},
                           {"architecture", options.architecture},
                           {"width", model.config().width},
                           {"small_input", model.config().small_input},
                           {"num_classes", model.config().num_classes}};
  config["genotype"] = model.config().meta_pooling ? model.genotype().to_json() : nlohmann::json(nullptr);
  std::vector<std::string> classes = options.classes;
  if (classes.empty()) {
    for (int64_t c = 0; c < model.config().num_classes; ++c) classes.push_back(std::to_string(c));
  }
  PMPL_CHECK(static_cast<int64_t>(classes.size()) == model.config().num_classes,
             "export: {} class names for a network with {} classes", classes.size(), model.config().num_classes);
  config["classes"] = classes;
  config["input"] = {{"size", options.input_size},
                     {"mean", {kMean[0], kMean[1], kMean[2]}},
                     {"std", {kStd[0], kStd[1], kStd[2]}},
                     {"transform", "resize shorter side to int(size / 0.875), center crop size"}};
  if (!graph.is_null()) config["graph"] = std::move(graph);
  folded.config = std::move(config);
  return folded;
}

DeployModel read_deploy_model(const std::string& path) {
  DeployFile file;
  std::string error;
  PMPL_CHECK(read_deploy_file(path, file, error), "{}", error);
  DeployModel model;
  try {
    model.config = nlohmann::json::parse(file.config_json);
  } catch (const nlohmann::json::exception& e) {
    PMPL_CHECK(false, "{}: the model description is not JSON ({})", path, e.what());
  }
  PMPL_CHECK(model.config.is_object() && model.config.value("format", "") == "pmpl-model",
             "{}: not a pmpl model description", path);
  model.config.erase("dtype");
  for (const DeployTensor& t : file.tensors) {
    FoldedTensor& out = model.tensors[t.name];
    for (uint64_t d : t.shape) out.shape.push_back(static_cast<int64_t>(d));
    out.data.resize(t.numel());
    const uint8_t* src = file.bytes.data() + t.offset;
    for (uint64_t i = 0; i < t.numel(); ++i) {
      if (t.dtype == DeployDType::kI8) {
        out.data[i] = static_cast<int8_t>(src[i]);
        out.int8 = true;
      } else if (t.dtype == DeployDType::kF32) {
        float v;
        std::memcpy(&v, src + 4 * i, 4);
        out.data[i] = v;
      } else {
        f16 h;
        std::memcpy(&h.bits, src + 2 * i, 2);
        out.data[i] = static_cast<float>(h);
      }
    }
  }
  return model;
}

void write_deploy_file(const DeployModel& model, bool f16_weights, const std::string& path) {
  nlohmann::json config = model.config;
  config["dtype"] = config.contains("quantization") ? "int8" : f16_weights ? "f16" : "f32";
  std::vector<DeployTensor> tensors;
  std::vector<std::vector<uint8_t>> data;
  for (const auto& [name, f] : model.tensors) {
    DeployTensor t;
    t.name = name;
    t.dtype = f.int8 ? DeployDType::kI8 : f16_weights ? DeployDType::kF16 : DeployDType::kF32;
    for (int64_t d : f.shape) t.shape.push_back(static_cast<uint64_t>(d));
    std::vector<uint8_t> bytes(f.data.size() * (f.int8 ? 1 : f16_weights ? 2 : 4));
    for (size_t i = 0; i < f.data.size(); ++i) {
      if (f.int8) {
        PMPL_ASSERT(f.data[i] >= -127 && f.data[i] <= 127 && f.data[i] == std::floor(f.data[i]),
                    "export: {}[{}] = {} is not an int8 value", name, i, f.data[i]);
        bytes[i] = static_cast<uint8_t>(static_cast<int8_t>(f.data[i]));
      } else if (f16_weights) {
        const uint16_t h = f16(static_cast<float>(f.data[i])).bits;
        std::memcpy(bytes.data() + 2 * i, &h, 2);
      } else {
        const auto v = static_cast<float>(f.data[i]);
        std::memcpy(bytes.data() + 4 * i, &v, 4);
      }
    }
    tensors.push_back(std::move(t));
    data.push_back(std::move(bytes));
  }
  const std::vector<uint8_t> file = encode_deploy_file(config.dump(), tensors, data);
  write_file_atomically(path, std::string(file.begin(), file.end()));
}

void export_model(const Network& model, const ExportOptions& options, const std::string& path) {
  write_deploy_file(fold_model(model, options), options.f16, path);
}

void write_file_atomically(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    PMPL_CHECK(f.good(), "cannot write {}: check the directory exists and is writable", path);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    PMPL_CHECK(f.good(), "writing {} failed (disk full?)", tmp);
  }
  PMPL_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, "cannot rename {} to {}", tmp, path);
}

}  // namespace pmpl::deploy
