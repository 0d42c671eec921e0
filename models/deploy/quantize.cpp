#include "models/deploy/quantize.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "engine/error.h"
#include "models/deploy/graph_int8.h"
#include "models/deploy/int8_kernels.h"
#include "models/deploy/mobilenetv2_graph.h"

namespace pmpl::deploy {
namespace {

// Values kept per observed batch for the percentile method: a strided subsample, so memory stays
// bounded (about 50 points x batches x 8192 floats) whatever the image size.
constexpr int64_t kSamplePerBatch = 8192;

double quantile(std::vector<float> v, double q) {
  if (v.empty()) return 0.0;
  const auto k = static_cast<size_t>(std::clamp(q, 0.0, 1.0) * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

}  // namespace

Calibrator::Calibrator(CalibrationOptions options) : options_(std::move(options)) {
  PMPL_CHECK(options_.method == "minmax" || options_.method == "percentile",
             "calibration method '{}': use minmax or percentile", options_.method);
  PMPL_CHECK(options_.percentile > 50.0 && options_.percentile <= 100.0,
             "--calib-percentile {}: give a value in (50, 100]", options_.percentile);
}

void Calibrator::observe(const std::string& point, const Tensor& activation) {
  const Tensor t = activation.to(Device::cpu()).to(DType::kF32);
  const float* p = t.data<float>();
  const int64_t n = t.numel();
  if (n == 0) return;
  if (point.rfind("input:", 0) == 0) {
    const int64_t c = t.dim(-1);
    Means& m = inputs_[point.substr(6)];
    m.sum.resize(static_cast<size_t>(c), 0.0);
    for (int64_t row = 0; row < n / c; ++row) {
      for (int64_t ch = 0; ch < c; ++ch) m.sum[static_cast<size_t>(ch)] += p[row * c + ch];
    }
    m.count += n / c;
    return;
  }
  const auto [lo, hi] = std::minmax_element(p, p + n);
  auto [it, fresh] = stats_.try_emplace(point);
  Stats& s = it->second;
  s.lo = fresh ? *lo : std::min<double>(s.lo, *lo);
  s.hi = fresh ? *hi : std::max<double>(s.hi, *hi);
  if (options_.method == "percentile") {
    const int64_t stride = std::max<int64_t>(1, n / kSamplePerBatch);
    for (int64_t i = 0; i < n; i += stride) s.sample.push_back(p[i]);
  }
}

nlohmann::json Calibrator::activations() const {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [point, s] : stats_) {
    double lo = s.lo, hi = s.hi;
    if (options_.method == "percentile") {
      const double tail = 1.0 - options_.percentile / 100.0;
      lo = quantile(s.sample, tail);
      hi = quantile(s.sample, 1.0 - tail);
    }
    const QuantParams q = choose_params(lo, hi);
    out[point] = {q.scale, q.zero_point};
  }
  return out;
}

std::vector<double> Calibrator::input_means(const std::string& conv) const {
  auto it = inputs_.find(conv);
  if (it == inputs_.end() || it->second.count == 0) return {};
  std::vector<double> out = it->second.sum;
  for (double& v : out) v /= static_cast<double>(it->second.count);
  return out;
}

DeployModel quantize_model(const DeployModel& model, const Calibrator& calibrator, int64_t images) {
  PMPL_CHECK(!model.config.contains("quantization"), "the model is already quantised");
  DeployModel out = model;
  std::set<std::string> int8_weights;
  const nlohmann::json graph = deployment_graph(model.config);
  for (const nlohmann::json& node : graph.at("nodes")) {
    if (int8_node(node)) int8_weights.insert(node.at("name").get<std::string>() + ".weight");
  }
  for (auto& [name, t] : model.tensors) {
    if (!int8_weights.count(name)) continue;
    FoldedTensor& q = out.tensors.at(name);
    q.int8 = true;
    const int64_t channels = t.shape.at(0);
    const size_t per = t.data.size() / static_cast<size_t>(channels);
    const std::string conv = name.substr(0, name.size() - 7);
    // The input channel of each weight: the last dim of a dense [O, 1, 1, I] or [O, I] weight, the
    // output channel itself for a depthwise [C, k, k] one.
    const bool depthwise = t.shape.size() == 3;
    const std::vector<double> means = calibrator.input_means(conv);
    PMPL_CHECK(means.empty() || static_cast<int64_t>(means.size()) == (depthwise ? channels : t.shape.back()),
               "calibration saw {} input channels for {}", means.size(), conv);
    std::vector<double>& bias = out.tensors.at(conv + ".bias").data;
    FoldedTensor scale{{channels}, {}, false};
    for (int64_t o = 0; o < channels; ++o) {
      double peak = 0.0;
      for (size_t i = 0; i < per; ++i) peak = std::max(peak, std::abs(t.data[static_cast<size_t>(o) * per + i]));
      // float32, as the file stores it, so that quantising and the runtime agree on the scale.
      const float s = peak > 0.0 ? static_cast<float>(peak / 127.0) : 1.0f;
      scale.data.push_back(s);
      double shift = 0.0;
      for (size_t i = 0; i < per; ++i) {
        double& v = q.data[static_cast<size_t>(o) * per + i];
        const double original = v;
        v = std::clamp(std::round(v / s), -127.0, 127.0);
        if (!means.empty()) shift += (v * s - original) * means[depthwise ? static_cast<size_t>(o) : i];
      }
      bias[static_cast<size_t>(o)] -= shift;
    }
    out.tensors[conv + ".weight_scale"] = std::move(scale);
  }
  const nlohmann::json activations = calibrator.activations();
  PMPL_CHECK(!activations.empty(), "no calibration images were run: nothing to choose the activations' ranges from");
  out.config["quantization"] = {{"scheme", "int8 weights per output channel (symmetric), uint8 activations per tensor"},
                                {"method", calibrator.options().method},
                                {"images", images},
                                {"activations", activations}};
  if (calibrator.options().method == "percentile") {
    out.config["quantization"]["percentile"] = calibrator.options().percentile;
  }
  return out;
}

}  // namespace pmpl::deploy
