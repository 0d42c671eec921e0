// `pmpl export`: a trained network with every enhancer fixed, turned into the deployment file:
// each batchnorm folded into the conv before it (W' = W * s, b' = beta - mean * s with
// s = gamma / sqrt(var + eps)), the enhancer's batchnorm (after a pooling sum: nothing to fold
// into) kept as a per-channel scale and shift, alphas and unchosen candidates gone.
#pragma once

#include <string>
#include <vector>

#include "models/mobilenetv2.h"

namespace pmpl::deploy {

struct ExportOptions {
  std::string architecture;          // "mobilenetv2" or "mobilenetv2_mp"
  std::vector<std::string> classes;  // label order; empty: "0", "1", ...
  int input_size = 224;
  bool f16 = false;
};

// Writes `path` (via a temporary file). The network must be fixed throughout (pmpl::Error
// naming the first open enhancer otherwise).
void export_model(const MobileNetV2& model, const ExportOptions& options, const std::string& path);

}  // namespace pmpl::deploy
