// int8 post-training quantisation of a folded network (`pmpl export --dtype int8 --calibrate DIR`):
// the weights of the graph nodes that run in int8 (graph_int8.h's int8_node: the 1x1 and depthwise
// convs and the linear layers, not the stem) become int8, symmetric per output channel
// (scale = max |w| / 127); each value of the graph gets one uint8 scale and zero point from
// calibration: the f32 network run on real images while a Calibrator watches every value
// (Runtime::run_observed). Bias correction:
// rounding the weights shifts each output channel's mean by sum_i (Wq - W)[o, i] * E[x_i]; the
// calibration images give E[x] per input channel ("input:" points), and the bias absorbs the shift.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/tensor.h"
#include "models/deploy/export.h"

namespace pmpl::deploy {

struct CalibrationOptions {
  // "minmax", "percentile" (the range that holds `percentile`% of values) or "entropy" (each
  // side clipped where the KL divergence of its 8-bit histogram is least, as TensorRT does)
  std::string method = "minmax";
  double percentile = 99.99;
};

class Calibrator {
 public:
  explicit Calibrator(CalibrationOptions options);
  void observe(const std::string& point, const Tensor& activation);
  const CalibrationOptions& options() const { return options_; }
  // {point: [scale, zero_point]} for every point seen (the "input:" points excepted).
  nlohmann::json activations() const;
  // The mean of each channel of what conv `conv` reads; empty if it was not observed.
  std::vector<double> input_means(const std::string& conv) const;

 private:
  struct Stats {
    double lo = 0.0, hi = 0.0;
    std::vector<float> sample;  // a strided subsample of every batch, for percentile and entropy
  };
  CalibrationOptions options_;
  std::map<std::string, Stats> stats_;
  struct Means {
    std::vector<double> sum;
    int64_t count = 0;
  };
  std::map<std::string, Means> inputs_;
};

// The int8 model: quantised weights with their "<conv>.weight_scale", the rest unchanged, and
// config["quantization"] = {"method", "images", "activations": calibrator's}.
DeployModel quantize_model(const DeployModel& model, const Calibrator& calibrator, int64_t images);

}  // namespace pmpl::deploy
