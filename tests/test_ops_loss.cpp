// Reductions, softmax and the loss (engine/ops/reduce.cpp, softmax.cpp, cross_entropy.cpp):
// OpGrad.* finite-difference gradients in f64, OpRef.* fast paths against plain loops (kRefTol),
// OpTorch.* against PyTorch (kTorchTol).
// The methods and their tolerances: tests/op_test_util.h.
#include "tests/op_test_util.h"

namespace pmpl {
namespace {

using test::expect_gradients_match;
using test::expect_close;
using test::f32;
using test::random;

TEST(OpGrad, Sum) {
  for (const std::vector<int>& axes : std::vector<std::vector<int>>{{}, {0}, {1, 2}, {0, 2}, {-1}}) {
    SCOPED_TRACE(testing::Message() << "axes " << ::testing::PrintToString(axes));
    for (bool keep : {false, true}) {
      expect_gradients_match([&](const Tensors& t) { return ops::sum(t[0], axes, keep); },
                             {random({2, 3, 4, 5}, 18)});
    }
  }
}

TEST(OpGrad, Mean) {
  expect_gradients_match([](const Tensors& t) { return ops::mean(t[0], {1, 2}, true); },
                         {random({2, 3, 4, 5}, 19)});
}

TEST(OpGrad, Softmax) {
  expect_gradients_match([](const Tensors& t) { return ops::softmax(t[0]); },
                         {random({3, 2, 7}, 20, true, 2.0)});
}

TEST(OpGrad, LogSoftmax) {
  expect_gradients_match([](const Tensors& t) { return ops::log_softmax(t[0]); },
                         {random({3, 2, 7}, 21, true, 2.0)});
}

TEST(OpGrad, CrossEntropy) {
  const Tensor labels = Tensor::from_vector<int64_t>({3, 0, 6, 2, 5}, Shape{5});
  for (double smoothing : {0.0, 0.1}) {
    SCOPED_TRACE(testing::Message() << "label smoothing " << smoothing);
    expect_gradients_match(
        [&](const Tensors& t) { return ops::cross_entropy(t[0], labels, smoothing); },
        {random({5, 7}, 22, true, 2.0)});
  }
}

TEST(OpRef, CrossEntropyLabelSmoothing) {
  const Tensor logits = random({4, 6}, 15, false, 3.0);
  const Tensor labels = Tensor::from_vector<int64_t>({5, 0, 2, 2}, Shape{4});
  const double eps = 0.1;
  double total = 0.0;
  const double* p = logits.data<double>();
  for (int r = 0; r < 4; ++r) {
    double z = 0.0;
    for (int j = 0; j < 6; ++j) z += std::exp(p[r * 6 + j]);
    for (int j = 0; j < 6; ++j) {
      const double q = (j == labels.data<int64_t>()[r] ? 1.0 - eps : 0.0) + eps / 6.0;
      total -= q * (p[r * 6 + j] - std::log(z));
    }
  }
  expect_close(ops::cross_entropy(f32(logits), labels, eps),
               Tensor::full(Shape{}, total / 4.0, DType::kF64), test::kRefTol, test::kRefTol, "cross_entropy");
}

TEST(OpTorch, CrossEntropyLabelSmoothing) {
  const nlohmann::json& c = test::torch_fixtures().at("cases").at("cross_entropy_smooth");
  const Tensor labels = Tensor::from_vector(c.at("labels").get<std::vector<int64_t>>(),
                                            Shape{static_cast<int64_t>(c.at("labels").size())});
  test::check_torch_case("cross_entropy_smooth", {"logits"}, [&](const Tensors& t) {
    return ops::cross_entropy(t[0], labels, c.at("label_smoothing").get<double>());
  });
}

}  // namespace
}  // namespace pmpl
