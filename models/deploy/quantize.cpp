#include "models/deploy/quantize.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "engine/error.h"
#include "models/deploy/graph_int8.h"
#include "models/deploy/int8_kernels.h"
#include "models/deploy/mobilenetv2_graph.h"

namespace pmpl::deploy {
namespace {

// Values kept per observed batch for the percentile and entropy methods: a strided subsample, so memory stays
// bounded (about 50 points x batches x 8192 floats) whatever the image size.
constexpr int64_t kSamplePerBatch = 8192;

// The entropy method (TensorRT's calibration, Migacz 2017): of the thresholds t that clip one side
// of the values at t, the one whose `levels`-step quantisation loses least information: the KL
// divergence between the clipped histogram (what is beyond t counted in the last bin) and that
// histogram merged into `levels` steps and spread back, over 2048 bins of [0, max |v|] on that
// side. `magnitudes` are the side's |v|, all > 0.
double entropy_threshold(const std::vector<float>& magnitudes, int levels) {
  constexpr int kBins = 2048;
  if (magnitudes.empty()) return 0.0;
  const double top = *std::max_element(magnitudes.begin(), magnitudes.end());
  if (levels >= kBins || top <= 0.0) return top;
  std::vector<double> hist(kBins, 0.0);
  for (float v : magnitudes) hist[std::min<size_t>(kBins - 1, static_cast<size_t>(v / top * kBins))] += 1.0;
  double best = top, best_kl = std::numeric_limits<double>::infinity();
  std::vector<double> ref(kBins), quant(kBins);
  double beyond = 0.0;
  for (int i = kBins - 1; i >= levels; --i) beyond += hist[static_cast<size_t>(i)];
  for (int i = levels; i <= kBins; ++i) {
    // ref: the first i bins, the rest folded into bin i - 1
    if (i > levels) beyond -= hist[static_cast<size_t>(i - 1)];
    std::copy(hist.begin(), hist.begin() + i, ref.begin());
    ref[static_cast<size_t>(i - 1)] += beyond;
    // quant: the first i bins alone (what is beyond is what the clip loses) merged into `levels`
    // steps, each step's count spread over its non-empty bins
    std::fill(quant.begin(), quant.begin() + i, 0.0);
    for (int step = 0; step < levels; ++step) {
      const int from = static_cast<int>(static_cast<int64_t>(step) * i / levels);
      const int to = static_cast<int>(static_cast<int64_t>(step + 1) * i / levels);
      double sum = 0.0;
      int nonzero = 0;
      for (int b = from; b < to; ++b) {
        sum += hist[static_cast<size_t>(b)];
        nonzero += hist[static_cast<size_t>(b)] > 0.0;
      }
      for (int b = from; b < to; ++b) {
        if (hist[static_cast<size_t>(b)] > 0.0) quant[static_cast<size_t>(b)] = sum / nonzero;
      }
    }
    double ref_total = 0.0, quant_total = 0.0;
    for (int b = 0; b < i; ++b) {
      ref_total += ref[static_cast<size_t>(b)];
      quant_total += quant[static_cast<size_t>(b)];
    }
    // A little mass in every bin of quant, so that the clipped values landing in an empty last
    // bin cost a large but finite divergence (TensorRT smooths the same way).
    const double floor = 1e-4 * quant_total / i;
    double kl = 0.0;
    for (int b = 0; b < i; ++b) {
      const double p = ref[static_cast<size_t>(b)] / ref_total;
      if (p <= 0.0) continue;
      const double q = (quant[static_cast<size_t>(b)] + floor) / (quant_total + floor * i);
      kl += p * std::log(p / q);
    }
    if (kl < best_kl) {
      best_kl = kl;
      best = (i + 0.5) * top / kBins;
    }
  }
  return std::min(best, top);
}

double quantile(std::vector<float> v, double q) {
  if (v.empty()) return 0.0;
  const auto k = static_cast<size_t>(std::clamp(q, 0.0, 1.0) * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

}  // namespace

Calibrator::Calibrator(CalibrationOptions options) : options_(std::move(options)) {
  PMPL_CHECK(options_.method == "minmax" || options_.method == "percentile" || options_.method == "entropy",
             "calibration method '{}': use minmax, percentile or entropy", options_.method);
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
  if (options_.method != "minmax") {
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
    } else if (options_.method == "entropy" && hi - lo > 0.0) {
      // Each side clipped on its own, with the share of the 255 steps min-max would give it.
      std::vector<float> positive, negative;
      for (float v : s.sample) (v > 0.0f ? positive : negative).push_back(std::abs(v));
      negative.erase(std::remove(negative.begin(), negative.end(), 0.0f), negative.end());
      const auto steps = [&](double side) { return std::max(8, static_cast<int>(std::lround(255.0 * side / (hi - lo)))); };
      const double new_hi = hi > 0.0 ? entropy_threshold(positive, steps(hi)) : hi;
      const double new_lo = lo < 0.0 ? -entropy_threshold(negative, steps(-lo)) : lo;
      hi = new_hi;
      lo = new_lo;
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
