// Test helpers: random inputs (never all zero), the finite-difference gradient check, and
// elementwise comparison with a stated tolerance.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/cuda_runtime.h"
#include "engine/ops.h"
#include "core/rng.h"
#include "models/deploy/export.h"
#include "models/network.h"

// GPU tests skip (not pass) where no GPU is visible, saying why.
#define SKIP_WITHOUT_GPU()                                                                  \
  if (::pmpl::cuda::device_count() == 0)                                                  \
  GTEST_SKIP() << (::pmpl::cuda::built_with_cuda() ? "no CUDA GPU visible" : "built without CUDA")

namespace pmpl::test {

// Standard normal values times `scale`, f64 unless told otherwise, requiring grad when asked.
Tensor random(const Shape& shape, uint64_t seed, bool requires_grad = true, double scale = 1.0,
              DType dtype = DType::kF64);

struct GradCheckOptions {
  double eps = 1e-6;   // central difference step
  double atol = 1e-7;  // f64 central differences are good to ~eps^2 * f''' + rounding/eps ~ 1e-9
  double rtol = 1e-6;
};

// Checks the backward of `fn` against central finite differences for every input that requires
// grad, through L = sum(fn(inputs) * r) with a random r. `fn` must be deterministic (create any
// generator inside it). Fails the test on mismatch, on a non-finite output (a poisoned, unwritten
// element), or when an input's numerical gradient is all zero (a check that cannot fail).
void expect_gradients_match(const std::function<Tensor(const Tensors&)>& fn, const Tensors& inputs,
                            const GradCheckOptions& options = {});

// The same check for a whole network: L = sum(forward() * r); for each parameter, `samples`
// elements spread over it are perturbed (checking every element of a network would take hours).
void expect_parameter_gradients_match(const std::function<Tensor()>& forward,
                                      const std::vector<std::pair<std::string, Tensor>>& params,
                                      int samples, const GradCheckOptions& options = {});

// The smallest useful MobileNetV2: width 0.25, small-input stem, `classes` outputs.
ModelConfig tiny_config(int64_t classes, double dropout = 0.2);

// `open` (a searching network's genotype) fixed with every op alone, two summed, and the enhancer
// removed ("none"), in turn.
Genotype every_choice_genotype(Genotype open);
// A fixed Meta-Pooling network (tiny_config(7)) using every kind of op (strip, skip, max, avg,
// pairs, and removed: every_choice_genotype), with batchnorm statistics and affine parameters moved off their initial values, in
// eval mode: what the export tests export.
std::shared_ptr<Network> trained_fixed_network();
// The export options for it: mobilenetv2_mp at 20 px.
deploy::ExportOptions mp_options();

// |actual - expected| <= atol + rtol * |expected| elementwise, any float dtypes; same shape.
void expect_close(const Tensor& actual, const Tensor& expected, double atol, double rtol,
                  const std::string& what = "");

std::vector<double> as_doubles(const Tensor& t);

// ||actual - expected|| / ||expected|| (L2, in double, on any device or float dtype); infinite
// when actual holds a non-finite value.
double relative_error(const Tensor& actual, const Tensor& expected);

// The bytes of a base64 text (the golden fixtures' image encoding).
std::vector<uint8_t> base64(const std::string& text);

// A fresh folder under the system's temporary one, unique to this process and object, removed with
// everything in it when the object goes.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& prefix = "pmpl_test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

}  // namespace pmpl::test
