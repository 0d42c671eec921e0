// `pmpl export`: a trained network with every enhancer fixed, turned into a deployable one:
// each batchnorm folded into the conv before it (W' = W * s, b' = beta - mean * s with
// s = gamma / sqrt(var + eps)), the enhancer's batchnorm (after a pooling sum: nothing to fold
// into) kept as a per-channel scale and shift, alphas and unchosen candidates gone. The folded
// network (DeployModel) is then written as pmpl's deployment file (here) or as ONNX
// (models/deploy/onnx_export.h).
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/network.h"

namespace pmpl::deploy {

struct ExportOptions {
  std::string architecture;          // "mobilenetv2" or "mobilenetv2_mp"
  std::vector<std::string> classes;  // label order; empty: "0", "1", ...
  int input_size = 224;
  bool f16 = false;  // export_model's weights: f16 rather than f32
};

// One folded tensor in pmpl's layouts (docs/FORMAT.md, "Tensors"), kept in double until written;
// `int8`: its values are integers in [-127, 127], written as int8 (a quantised file's weights).
struct FoldedTensor {
  std::vector<int64_t> shape;
  std::vector<double> data;
  bool int8 = false;
};

// The folded network: the file's config (docs/FORMAT.md, "The config", without "dtype") and its
// tensors by name (sorted, so the same network always writes the same bytes).
struct DeployModel {
  nlohmann::json config;
  std::map<std::string, FoldedTensor> tensors;
};

// The network must be fixed throughout (pmpl::Error naming the first open enhancer otherwise).
DeployModel fold_model(const Network& model, const ExportOptions& options);

// Reads a deployment file back into a DeployModel (f16 tensors widened): pmpl::Error naming the
// file for anything but a valid one.
DeployModel read_deploy_model(const std::string& path);

// Writes `path` as a deployment file (via a temporary file) with f32 or f16 weights.
void write_deploy_file(const DeployModel& model, bool f16, const std::string& path);

// fold_model, then write_deploy_file.
void export_model(const Network& model, const ExportOptions& options, const std::string& path);

// Writes `bytes` to `path` through `path`.tmp and a rename, so a kill never leaves half a file.
void write_file_atomically(const std::string& path, const std::string& bytes);

}  // namespace pmpl::deploy
