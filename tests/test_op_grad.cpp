// One finite-difference gradient check per op (OpGrad.<Op>), in f64 on small random shapes with
// odd sizes, so an indexing mistake cannot hide behind symmetric dimensions.
#include "tests/test_util.h"

namespace pmpl {
namespace {

using test::expect_gradients_match;
using test::random;

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

TEST(OpGrad, Matmul) {
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      SCOPED_TRACE(testing::Message() << "transpose_a " << ta << " transpose_b " << tb);
      const Shape sa = ta ? Shape{4, 3} : Shape{3, 4};
      const Shape sb = tb ? Shape{5, 4} : Shape{4, 5};
      expect_gradients_match([ta, tb](const Tensors& t) { return ops::matmul(t[0], t[1], ta, tb); },
                             {random(sa, 16), random(sb, 17)});
    }
  }
}

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

TEST(OpGrad, Linear) {
  expect_gradients_match([](const Tensors& t) { return ops::linear(t[0], t[1], t[2]); },
                         {random({2, 3, 6}, 23), random({4, 6}, 24), random({4}, 25)});
}

TEST(OpGrad, Conv2d) {
  struct Case { int k, stride, padding; };
  for (Case c : {Case{3, 1, 1}, Case{3, 2, 1}, Case{1, 1, 0}, Case{5, 2, 2}, Case{2, 3, 0}}) {
    SCOPED_TRACE(testing::Message() << "k " << c.k << " stride " << c.stride << " pad " << c.padding);
    expect_gradients_match(
        [c](const Tensors& t) { return ops::conv2d(t[0], t[1], c.stride, c.padding); },
        {random({2, 7, 6, 3}, 26), random({4, c.k, c.k, 3}, 27)});
  }
}

TEST(OpGrad, DepthwiseConv) {
  for (int k : {3, 5, 7}) {
    for (int stride : {1, 2}) {
      SCOPED_TRACE(testing::Message() << "k " << k << " stride " << stride);
      expect_gradients_match(
          [k, stride](const Tensors& t) { return ops::depthwise_conv2d(t[0], t[1], stride, k / 2); },
          {random({2, 9, 8, 3}, 28), random({3, k, k}, 29)});
    }
  }
}

TEST(OpGrad, PointwiseConv) {
  expect_gradients_match([](const Tensors& t) { return ops::pointwise_conv(t[0], t[1]); },
                         {random({2, 3, 4, 5}, 30), random({6, 1, 1, 5}, 31)});
}

TEST(OpGrad, BatchNormTrain) {
  const Tensor running_mean = Tensor::zeros(Shape{5}, DType::kF64);
  const Tensor running_var = Tensor::ones(Shape{5}, DType::kF64);
  // A shifted input (mean ~3) checks the centering term of the backward.
  Tensor x = ops::add(random({2, 3, 4, 5}, 32, false), Tensor::full(Shape{5}, 3.0, DType::kF64));
  x.set_requires_grad(true);
  expect_gradients_match(
      [&](const Tensors& t) {
        return ops::batch_norm(t[0], t[1], t[2], running_mean, running_var, true);
      },
      {x, random({5}, 33), random({5}, 34)});
}

TEST(OpGrad, BatchNormReLU6) {
  // Spread so that the clamp cuts at both ends.
  expect_gradients_match(
      [](const Tensors& t) {
        return ops::batch_norm(t[0], t[1], t[2], Tensor(), Tensor(), true, 0.1, 1e-5,
                               ops::BnActivation::kReLU6);
      },
      {random({2, 3, 4, 5}, 52), ops::scale(random({5}, 53, false), 4.0).set_requires_grad(true),
       ops::add(random({5}, 54, false), Tensor::full(Shape{5}, 2.0, DType::kF64)).set_requires_grad(true)});
}

TEST(OpGrad, BatchNormHardswish) {
  // Spread so that values fall below -3, between -3 and 3, and above 3.
  expect_gradients_match(
      [](const Tensors& t) {
        return ops::batch_norm(t[0], t[1], t[2], Tensor(), Tensor(), true, 0.1, 1e-5,
                               ops::BnActivation::kHardswish);
      },
      {random({2, 3, 4, 5}, 55), ops::scale(random({5}, 56, false), 4.0).set_requires_grad(true),
       random({5}, 57)});
}

TEST(OpGrad, BatchNormEval) {
  const Tensor running_mean = random({5}, 35, false);
  const Tensor running_var = ops::add(ops::mul(random({5}, 36, false), random({5}, 36, false)),
                                      Tensor::full(Shape{5}, 0.5, DType::kF64));
  expect_gradients_match(
      [&](const Tensors& t) {
        return ops::batch_norm(t[0], t[1], t[2], running_mean, running_var, false);
      },
      {random({2, 3, 4, 5}, 37), random({5}, 38), random({5}, 39)});
}

// Spread inputs so the clamps of ReLU6 and hardswish are reached on both sides.
TEST(OpGrad, ChannelAffine) {
  for (auto act : {ops::ChannelActivation::kNone, ops::ChannelActivation::kReLU6, ops::ChannelActivation::kHardswish}) {
    SCOPED_TRACE(static_cast<int>(act));
    expect_gradients_match([act](const Tensors& t) { return ops::channel_affine(t[0], t[1], t[2], act); },
                           {random({2, 3, 4, 5}, 60, true, 4.0), random({5}, 61, true, 2.0), random({5}, 62)});
    expect_gradients_match([act](const Tensors& t) { return ops::channel_affine(t[0], Tensor(), t[1], act); },
                           {random({3, 7}, 63, true, 5.0), random({7}, 64)});
  }
}

TEST(OpGrad, MaxPool) {
  for (int k : {3, 5, 7}) {
    for (int stride : {1, 2}) {
      SCOPED_TRACE(testing::Message() << "k " << k << " stride " << stride);
      expect_gradients_match(
          [k, stride](const Tensors& t) { return ops::max_pool2d(t[0], k, stride, k / 2); },
          {random({2, 9, 8, 3}, 40)});
    }
  }
}

TEST(OpGrad, AvgPool) {
  for (int k : {3, 5, 7}) {
    for (int stride : {1, 2}) {
      SCOPED_TRACE(testing::Message() << "k " << k << " stride " << stride);
      expect_gradients_match(
          [k, stride](const Tensors& t) { return ops::avg_pool2d(t[0], k, stride, k / 2); },
          {random({2, 9, 8, 3}, 41)});
    }
  }
}

TEST(OpGrad, GlobalAvgPool) {
  expect_gradients_match([](const Tensors& t) { return ops::global_avg_pool(t[0]); },
                         {random({2, 3, 4, 5}, 42)});
}

TEST(OpGrad, StripPool) {
  expect_gradients_match([](const Tensors& t) { return ops::strip_pool(t[0]); },
                         {random({2, 3, 4, 5}, 43)});
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

TEST(OpGrad, Concat) {
  expect_gradients_match([](const Tensors& t) { return ops::concat({t[0], t[1], t[2]}, 1); },
                         {random({2, 3, 4}, 45), random({2, 1, 4}, 46), random({2, 2, 4}, 47)});
}

// Each piece of the split is used differently, and one not at all (its gradient is zero).
TEST(OpGrad, Split) {
  expect_gradients_match(
      [](const Tensors& t) {
        const Tensors parts = ops::split(t[0], {2, 3, 1}, -1);
        return ops::concat({ops::scale(parts[0], 3.0), ops::relu(parts[2])}, -1);
      },
      {random({2, 3, 6}, 48)});
}

TEST(OpGrad, Permute) {
  expect_gradients_match([](const Tensors& t) { return ops::permute(t[0], {0, 2, 3, 1}); },
                         {random({2, 3, 4, 5}, 51)});
}

TEST(OpGrad, Reshape) {
  expect_gradients_match(
      [](const Tensors& t) { return ops::mul(t[0].reshape(Shape{4, 6}), t[1]); },
      {random({2, 3, 4}, 49), random({6}, 50)});
}

}  // namespace
}  // namespace pmpl
