#include "tests/test_util.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include <unistd.h>

#include "models/registry.h"

namespace pmpl::test {

Tensor random(const Shape& shape, uint64_t seed, bool requires_grad, double scale, DType dtype) {
  Generator gen(seed);
  Tensor t = Tensor::randn(shape, gen, DType::kF64);
  if (scale != 1.0) t = ops::scale(t, scale);
  t = t.to(dtype);
  if (requires_grad) t.set_requires_grad(true);
  return t;
}

ModelConfig tiny_config(int64_t classes, double dropout) {
  ModelConfig config;
  config.width = 0.25;
  config.num_classes = classes;
  config.small_input = true;
  config.dropout = dropout;
  return config;
}

Genotype every_choice_genotype(Genotype open) {
  // {} stands for removed.
  const std::vector<std::vector<PoolOp>> choices = {{PoolOp::kStrip}, {PoolOp::kMax7}, {PoolOp::kAvg3, PoolOp::kMax3},
                                                    {PoolOp::kSkip},  {PoolOp::kAvg5}, {PoolOp::kStrip, PoolOp::kAvg7},
                                                    {},               {PoolOp::kMax5}};
  for (size_t i = 0; i < open.enhancers.size(); ++i) {
    open.enhancers[i].ops = choices[i % choices.size()];
    open.enhancers[i].removed = open.enhancers[i].ops.empty();
  }
  return open;
}

std::shared_ptr<Network> trained_fixed_network() {
  ModelConfig config = test::tiny_config(7);
  config.genotype = every_choice_genotype(build_model("mobilenetv2_mp", config)->genotype());
  auto model = build_model("mobilenetv2_mp", config);
  NoGradGuard no_grad;
  for (const NamedParameter& p : model->parameters()) {
    if (p.kind != ParamKind::kNoDecay) continue;
    Tensor t = p.tensor;
    t.copy_(ops::add(t, test::random(t.shape(), 5, false, 0.3, DType::kF32)));
  }
  model->train();
  for (int i = 0; i < 3; ++i) model->forward(test::random({4, 20, 20, 3}, 10 + i, false, 1.5, DType::kF32));
  model->eval();
  return model;
}

deploy::ExportOptions mp_options() {
  deploy::ExportOptions options;
  options.architecture = "mobilenetv2_mp";
  options.input_size = 20;
  return options;
}

std::vector<double> as_doubles(const Tensor& t) { return t.to(DType::kF64).to_vector<double>(); }

double relative_error(const Tensor& actual, const Tensor& expected) {
  const std::vector<double> a = as_doubles(actual), e = as_doubles(expected);
  EXPECT_EQ(a.size(), e.size()) << "relative_error of tensors of different sizes";
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < std::min(a.size(), e.size()); ++i) {
    if (!std::isfinite(a[i])) return std::numeric_limits<double>::infinity();
    diff += (a[i] - e[i]) * (a[i] - e[i]);
    norm += e[i] * e[i];
  }
  return std::sqrt(diff / std::max(norm, 1e-300));
}

void expect_close(const Tensor& actual, const Tensor& expected, double atol, double rtol,
                  const std::string& what) {
  ASSERT_EQ(actual.shape(), expected.shape()) << what << ": shape " << actual.shape().str()
                                              << " vs " << expected.shape().str();
  const std::vector<double> a = as_doubles(actual), e = as_doubles(expected);
  int reported = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const bool ok = std::isfinite(a[i]) && std::fabs(a[i] - e[i]) <= atol + rtol * std::fabs(e[i]);
    if (!ok && reported++ < 5) {
      ADD_FAILURE() << what << ": element " << i << " is " << a[i] << ", expected " << e[i]
                    << " (atol " << atol << ", rtol " << rtol << ")";
    }
  }
}

namespace {

double weighted_sum(const Tensor& y, const std::vector<double>& r) {
  const std::vector<double> v = as_doubles(y);
  double total = 0.0;
  for (size_t i = 0; i < v.size(); ++i) total += v[i] * r[i];
  return total;
}

}  // namespace

void expect_gradients_match(const std::function<Tensor(const Tensors&)>& fn, const Tensors& inputs,
                            const GradCheckOptions& options) {
  for (const Tensor& x : inputs) {
    ASSERT_EQ(x.dtype(), DType::kF64) << "gradient checks run in f64";
    if (x.requires_grad()) x.impl()->grad.reset();
  }
  const Tensor y = fn(inputs);
  ASSERT_TRUE(y.requires_grad()) << "the output does not depend on any input requiring grad";
  for (double v : as_doubles(y)) ASSERT_TRUE(std::isfinite(v)) << "non-finite output element";
  const Tensor r = random(y.shape(), 991, false);
  const std::vector<double> rv = as_doubles(r);
  y.backward(r);

  NoGradGuard no_grad;
  for (size_t k = 0; k < inputs.size(); ++k) {
    const Tensor& x = inputs[k];
    if (!x.requires_grad()) continue;
    const Tensor analytic = x.grad();
    ASSERT_TRUE(analytic.defined()) << "input " << k << " received no gradient";
    const std::vector<double> a = as_doubles(analytic);
    double* px = x.data<double>();
    double largest = 0.0;
    int reported = 0;
    for (int64_t i = 0; i < x.numel(); ++i) {
      const double saved = px[i];
      px[i] = saved + options.eps;
      const double plus = weighted_sum(fn(inputs), rv);
      px[i] = saved - options.eps;
      const double minus = weighted_sum(fn(inputs), rv);
      px[i] = saved;
      const double numeric = (plus - minus) / (2.0 * options.eps);
      largest = std::max(largest, std::fabs(numeric));
      const double err = std::fabs(a[static_cast<size_t>(i)] - numeric);
      if (!(err <= options.atol + options.rtol * std::fabs(numeric)) && reported++ < 5) {
        ADD_FAILURE() << "input " << k << " " << x.shape().str() << " element " << i
                      << ": backward " << a[static_cast<size_t>(i)] << ", finite difference "
                      << numeric << " (error " << err << ")";
      }
    }
    EXPECT_GT(largest, 1e-8) << "input " << k << ": gradient is zero everywhere; the check is void";
  }
}

void expect_parameter_gradients_match(const std::function<Tensor()>& forward,
                                      const std::vector<std::pair<std::string, Tensor>>& params,
                                      int samples, const GradCheckOptions& options) {
  for (const auto& [name, p] : params) p.impl()->grad.reset();
  const Tensor y = forward();
  const Tensor r = random(y.shape(), 992, false);
  const std::vector<double> rv = as_doubles(r);
  y.backward(r);
  NoGradGuard no_grad;
  for (const auto& [name, p] : params) {
    ASSERT_EQ(p.dtype(), DType::kF64) << name;
    const Tensor analytic = p.grad();
    ASSERT_TRUE(analytic.defined()) << name << " received no gradient";
    const std::vector<double> a = as_doubles(analytic);
    double* px = p.data<double>();
    const int64_t n = p.numel();
    for (int s = 0; s < samples && s < n; ++s) {
      const int64_t i = (s * 7919 + 13) % n;  // spread over the tensor
      const double saved = px[i];
      px[i] = saved + options.eps;
      const double plus = weighted_sum(forward(), rv);
      px[i] = saved - options.eps;
      const double minus = weighted_sum(forward(), rv);
      px[i] = saved;
      const double numeric = (plus - minus) / (2.0 * options.eps);
      const double err = std::fabs(a[static_cast<size_t>(i)] - numeric);
      EXPECT_LE(err, options.atol + options.rtol * std::fabs(numeric))
          << name << " element " << i << ": backward " << a[static_cast<size_t>(i)]
          << ", finite difference " << numeric;
    }
  }
}

std::vector<uint8_t> base64(const std::string& text) {
  std::vector<uint8_t> out;
  int value = 0, bits = -8;
  for (char c : text) {
    const char* table = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char* at = std::strchr(table, c);
    if (c == '=' || at == nullptr) break;
    value = (value << 6) + static_cast<int>(at - table);
    bits += 6;
    if (bits >= 0) {
      out.push_back(static_cast<uint8_t>((value >> bits) & 0xFF));
      bits -= 8;
    }
  }
  return out;
}

TempDir::TempDir(const std::string& prefix) {
  static int made = 0;
  path = std::filesystem::temp_directory_path() /
         (prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(made++));
  std::filesystem::remove_all(path);
  std::filesystem::create_directories(path);
}

TempDir::~TempDir() {
  std::error_code ignored;  // a destructor must not throw; a leftover temp folder is harmless
  std::filesystem::remove_all(path, ignored);
}

}  // namespace pmpl::test
