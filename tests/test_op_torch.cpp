// OpTorch.*: outputs and gradients against PyTorch's, from tests/fixtures/ops_torch.json
// (written by tools/make_op_fixtures.py, all in float64). Both sides compute in f64, so the
// tolerance is f64 rounding through a few dozen operations: 1e-10 absolute and relative.
#include <fstream>

#include <nlohmann/json.hpp>

#include "tests/test_util.h"

namespace pmpl {
namespace {

constexpr double kTol = 1e-10;

const nlohmann::json& fixtures() {
  static const nlohmann::json data = [] {
    std::ifstream in(std::string(PMPL_SOURCE_DIR) + "/tests/fixtures/ops_torch.json");
    EXPECT_TRUE(in.good()) << "missing tests/fixtures/ops_torch.json (tools/make_op_fixtures.py)";
    nlohmann::json j;
    in >> j;
    return j;
  }();
  return data;
}

Tensor load(const nlohmann::json& t, bool requires_grad = false) {
  Tensor out = Tensor::from_vector(t.at("data").get<std::vector<double>>(),
                                   Shape(t.at("shape").get<std::vector<int64_t>>()));
  if (requires_grad) out.set_requires_grad(true);
  return out;
}

// Runs `fn` on the case's inputs (named in order), compares output and every input gradient.
void check_case(const std::string& name, const std::vector<std::string>& input_names,
                const std::function<Tensor(const Tensors&)>& fn, double grad_tol = kTol) {
  SCOPED_TRACE(name);
  const nlohmann::json& c = fixtures().at("cases").at(name);
  Tensors inputs;
  for (const std::string& in : input_names) inputs.push_back(load(c.at("inputs").at(in), true));
  const Tensor y = fn(inputs);
  test::expect_close(y, load(c.at("output")), kTol, kTol, name + " output");
  y.backward(load(c.at("upstream")));
  for (size_t i = 0; i < inputs.size(); ++i) {
    test::expect_close(inputs[i].grad(), load(c.at("grads").at(input_names[i])), grad_tol, grad_tol,
                       name + " d" + input_names[i]);
  }
}

TEST(OpTorch, Pooling) {
  for (int k : {3, 5, 7}) {
    for (int s : {1, 2}) {
      check_case(fmt::format("avg_pool_k{}_s{}", k, s), {"x"},
                 [=](const Tensors& t) { return ops::avg_pool2d(t[0], k, s, k / 2); });
      check_case(fmt::format("max_pool_k{}_s{}", k, s), {"x"},
                 [=](const Tensors& t) { return ops::max_pool2d(t[0], k, s, k / 2); });
    }
  }
}

TEST(OpTorch, BatchNorm) {
  const nlohmann::json& train = fixtures().at("cases").at("batch_norm_train");
  Tensor rm = load(train.at("running_mean_before")), rv = load(train.at("running_var_before"));
  check_case("batch_norm_train", {"x", "gamma", "beta"}, [&](const Tensors& t) {
    return ops::batch_norm(t[0], t[1], t[2], rm, rv, true, 0.1, 1e-5);
  });
  test::expect_close(rm, load(train.at("running_mean_after")), kTol, kTol, "running_mean");
  test::expect_close(rv, load(train.at("running_var_after")), kTol, kTol, "running_var");

  const nlohmann::json& eval = fixtures().at("cases").at("batch_norm_eval");
  const Tensor erm = load(eval.at("running_mean_before")), erv = load(eval.at("running_var_before"));
  check_case("batch_norm_eval", {"x", "gamma", "beta"}, [&](const Tensors& t) {
    return ops::batch_norm(t[0], t[1], t[2], erm, erv, false, 0.1, 1e-5);
  });
}

TEST(OpTorch, CrossEntropyLabelSmoothing) {
  const nlohmann::json& c = fixtures().at("cases").at("cross_entropy_smooth");
  const Tensor labels = Tensor::from_vector(c.at("labels").get<std::vector<int64_t>>(),
                                            Shape{static_cast<int64_t>(c.at("labels").size())});
  check_case("cross_entropy_smooth", {"logits"}, [&](const Tensors& t) {
    return ops::cross_entropy(t[0], labels, c.at("label_smoothing").get<double>());
  });
}

TEST(OpTorch, Activations) {
  check_case("relu6", {"x"}, [](const Tensors& t) { return ops::relu6(t[0]); });
  check_case("hardswish", {"x"}, [](const Tensors& t) { return ops::hardswish(t[0]); });
  // PyTorch's CPU hardsigmoid backward multiplies by 1/6 rounded to f32 even in f64 (relative
  // error 3e-8); pmpl divides by 6 exactly. The gradient tolerance covers that, nothing more.
  check_case("hardsigmoid", {"x"}, [](const Tensors& t) { return ops::hardsigmoid(t[0]); }, 1e-7);
  check_case("sigmoid", {"x"}, [](const Tensors& t) { return ops::sigmoid(t[0]); });
  check_case("softmax", {"x"}, [](const Tensors& t) { return ops::softmax(t[0]); });
  check_case("log_softmax", {"x"}, [](const Tensors& t) { return ops::log_softmax(t[0]); });
}

TEST(OpTorch, Convolutions) {
  check_case("conv2d_k3_s2", {"x", "weight"},
             [](const Tensors& t) { return ops::conv2d(t[0], t[1], 2, 1); });
  check_case("depthwise_k5_s2", {"x", "weight"},
             [](const Tensors& t) { return ops::depthwise_conv2d(t[0], t[1], 2, 2); });
}

TEST(OpTorch, StripPool) {
  check_case("strip_pool", {"x"}, [](const Tensors& t) { return ops::strip_pool(t[0]); });
}

}  // namespace
}  // namespace pmpl
