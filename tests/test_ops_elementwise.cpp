// Elementwise ops (engine/ops/binary.cpp, activation.cpp, dropout.cpp, weighted_sum.cpp):
// OpGrad.* finite-difference gradients in f64, OpTorch.* against PyTorch (kTorchTol).
// The methods and their tolerances: tests/op_test_util.h.
#include <cmath>
#include <limits>

#include "core/math.h"
#include "tests/op_test_util.h"

namespace pmpl {
namespace {

using test::expect_gradients_match;
using test::random;

// The host's float exp (sigmoid, SiLU, log-softmax's backward) rounds as glibc's expf does:
// within 0.51 ulp of the exact value (0.5 is correct rounding) at 2 million points over
// [-87, 88] and near 0 in detail; clamped outside; NaN kept.
TEST(Math, VectorExpfRoundsAsGlibcDoes) {
  double worst = 0.0;
  float worst_at = 0.0f;
  auto check = [&](float x) {
    const double exact = std::exp(static_cast<double>(x));
    const double ulp = std::ldexp(1.0, std::ilogb(exact) - 23);
    const double err = std::abs(static_cast<double>(math::vector_expf(x)) - exact) / ulp;
    if (err > worst) {
      worst = err;
      worst_at = x;
    }
  };
  for (int i = 0; i <= 2'000'000; ++i) check(-87.0f + 175.0f * static_cast<float>(i) / 2e6f);
  for (float x = 1e-30f; x < 0.5f; x *= 1.01f) {
    check(x);
    check(-x);
  }
  EXPECT_LE(worst, 0.51) << "at " << worst_at;
  RecordProperty("worst_ulp", std::to_string(worst));
  EXPECT_EQ(math::vector_expf(0.0f), 1.0f);
  EXPECT_EQ(math::vector_expf(1000.0f), math::vector_expf(88.0f));
  EXPECT_EQ(math::vector_expf(-1000.0f), math::vector_expf(-87.0f));
  EXPECT_GT(math::vector_expf(-1000.0f), 0.0f);
  EXPECT_TRUE(std::isnan(math::vector_expf(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_LT(math::sigmoid(-1000.0f), 1e-37f);
  EXPECT_EQ(math::sigmoid(1000.0f), 1.0f);
}

TEST(OpGrad, Add) {
  expect_gradients_match([](const Tensors& t) { return ops::add(t[0], t[1]); },
                         {random({2, 3, 4, 5}, 1), random({2, 3, 4, 5}, 2)});
}

TEST(OpGrad, AddChannelBroadcast) {
  expect_gradients_match([](const Tensors& t) { return ops::add(t[0], t[1]); },
                         {random({2, 3, 4, 5}, 1), random({5}, 2)});
}

TEST(OpGrad, Sub) {
  expect_gradients_match([](const Tensors& t) { return ops::sub(t[0], t[1]); },
                         {random({3, 1, 5}, 3), random({4, 1}, 4)});
}

TEST(OpGrad, Mul) {
  expect_gradients_match([](const Tensors& t) { return ops::mul(t[0], t[1]); },
                         {random({2, 3, 4, 5}, 5), random({2, 3, 4, 5}, 6)});
}

// The coordinate-attention product: x [N, H, W, C] * a_h [N, H, 1, C] * a_w [N, 1, W, C].
TEST(OpGrad, MulStripBroadcast) {
  expect_gradients_match(
      [](const Tensors& t) { return ops::mul(ops::mul(t[0], t[1]), t[2]); },
      {random({2, 3, 4, 5}, 7), random({2, 3, 1, 5}, 8), random({2, 1, 4, 5}, 9)});
}

TEST(OpGrad, Scale) {
  expect_gradients_match([](const Tensors& t) { return ops::scale(t[0], -2.5); },
                         {random({3, 7}, 10)});
}

TEST(OpGrad, Relu) {
  expect_gradients_match([](const Tensors& t) { return ops::relu(t[0]); }, {random({4, 5, 3}, 11)});
}

// Inputs spread to about +-9 so every piece of the piecewise activations is exercised.
TEST(OpGrad, Relu6) {
  expect_gradients_match([](const Tensors& t) { return ops::relu6(t[0]); },
                         {random({4, 5, 3}, 12, true, 5.0)});
}

TEST(OpGrad, Hardswish) {
  expect_gradients_match([](const Tensors& t) { return ops::hardswish(t[0]); },
                         {random({4, 5, 3}, 13, true, 4.0)});
}

TEST(OpGrad, Hardsigmoid) {
  expect_gradients_match([](const Tensors& t) { return ops::hardsigmoid(t[0]); },
                         {random({4, 5, 3}, 14, true, 4.0)});
}

TEST(OpGrad, Sigmoid) {
  expect_gradients_match([](const Tensors& t) { return ops::sigmoid(t[0]); },
                         {random({4, 5, 3}, 15, true, 3.0)});
}

TEST(OpGrad, Silu) {
  expect_gradients_match([](const Tensors& t) { return ops::silu(t[0]); }, {random({4, 5, 3}, 16, true, 4.0)});
}

TEST(OpGrad, Dropout) {
  expect_gradients_match(
      [](const Tensors& t) {
        Generator gen(7);  // the same mask on every evaluation
        return ops::dropout(t[0], 0.3, true, gen);
      },
      {random({4, 5, 6}, 44)});
}

TEST(OpGrad, WeightedSum) {
  expect_gradients_match([](const Tensors& t) { return ops::weighted_sum({t[0], t[1], t[2]}, t[3]); },
                         {random({2, 3, 4}, 55), random({2, 3, 4}, 56), random({2, 3, 4}, 57), random({3}, 58)});
}

TEST(OpTorch, Activations) {
  test::check_torch_case("relu6", {"x"}, [](const Tensors& t) { return ops::relu6(t[0]); });
  test::check_torch_case("hardswish", {"x"}, [](const Tensors& t) { return ops::hardswish(t[0]); });
  // PyTorch's CPU hardsigmoid backward multiplies by 1/6 rounded to f32 even in f64 (relative
  // error 3e-8); pmpl divides by 6 exactly. The gradient tolerance covers that, nothing more.
  test::check_torch_case("hardsigmoid", {"x"}, [](const Tensors& t) { return ops::hardsigmoid(t[0]); }, 1e-7);
  test::check_torch_case("sigmoid", {"x"}, [](const Tensors& t) { return ops::sigmoid(t[0]); });
  test::check_torch_case("silu", {"x"}, [](const Tensors& t) { return ops::silu(t[0]); });
  test::check_torch_case("softmax", {"x"}, [](const Tensors& t) { return ops::softmax(t[0]); });
  test::check_torch_case("log_softmax", {"x"}, [](const Tensors& t) { return ops::log_softmax(t[0]); });
}

}  // namespace
}  // namespace pmpl
