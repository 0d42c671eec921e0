// Shape ops (engine/ops/shape.cpp): OpGrad.* finite-difference gradients in f64, OpRef.* fast
// paths against plain loops (kRefTol).
// The methods and their tolerances: tests/op_test_util.h.
#include "tests/op_test_util.h"

namespace pmpl {
namespace {

using test::expect_gradients_match;
using test::random;

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

// The shuffle feeds a weighted sum, so that every output channel's gradient is distinct.
TEST(OpGrad, ChannelShuffle) {
  for (int groups : {2, 3}) {
    expect_gradients_match([groups](const Tensors& t) { return ops::mul(ops::channel_shuffle(t[0], groups), t[1]); },
                           {random({2, 3, 12}, 52), random({12}, 53, false)});
  }
}

// PyTorch's channel_shuffle is view(N, g, C / g, H, W), transpose(1, 2), view back (NCHW): in NHWC
// the last dimension as [g, C / g], transposed. Against that with permute, for 2 and 4 groups, in
// f32 and f64 (the kernel moves elements of either size).
TEST(OpRef, ChannelShuffleIsTorchvisionsTranspose) {
  for (int groups : {2, 4}) {
    for (DType dtype : {DType::kF32, DType::kF64}) {
      const Tensor x = random({2, 3, 5, 24}, 54, false).to(dtype);
      const Tensor expected =
          ops::reshape(ops::permute(ops::reshape(x, Shape{2, 3, 5, groups, 24 / groups}), {0, 1, 2, 4, 3}),
                       Shape{2, 3, 5, 24});
      EXPECT_EQ(test::as_doubles(ops::channel_shuffle(x, groups)), test::as_doubles(expected)) << groups;
    }
  }
  EXPECT_THROW(ops::channel_shuffle(random({2, 5}, 55, false), 2), Error);
}

TEST(OpRef, PermuteMovesEveryElement) {
  std::vector<float> values(120);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i);
  const Tensor x = Tensor::from_vector(values, Shape{2, 3, 4, 5});  // [N, C, H, W]
  const std::vector<float> y = ops::permute(x, {0, 2, 3, 1}).to_vector<float>();  // [N, H, W, C]
  for (int n = 0; n < 2; ++n)
    for (int c = 0; c < 3; ++c)
      for (int h = 0; h < 4; ++h)
        for (int w = 0; w < 5; ++w)
          ASSERT_EQ(y[static_cast<size_t>(((n * 4 + h) * 5 + w) * 3 + c)],
                    values[static_cast<size_t>(((n * 3 + c) * 4 + h) * 5 + w)]);
}

}  // namespace
}  // namespace pmpl
