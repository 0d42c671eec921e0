// Mixed precision's host-side pieces, which run anywhere: the --amp choice, ops::cast and its
// gradient, and the fp16 loss scaler's policy (skip and halve on overflow, grow after a run of
// good steps, resume where it was).
#include <cmath>
#include <limits>

#include "tests/test_util.h"
#include "train/amp.h"
#include "train/loss_scale.h"
#include "train/parameters.h"

namespace pmpl {
namespace {

TEST(Amp, ChoosesF32OnTheCpuAndRefusesLowPrecisionThere) {
  EXPECT_EQ(amp_dtype("auto", Device::cpu()), DType::kF32);
  EXPECT_EQ(amp_dtype("off", Device::cpu()), DType::kF32);
  EXPECT_THROW(amp_dtype("bf16", Device::cpu()), Error);
  EXPECT_THROW(amp_dtype("fp16", Device::cpu()), Error);
  EXPECT_THROW(amp_dtype("fp8", Device::cpu()), Error);
}

TEST(Amp, CastRoundsAndSendsTheGradientBackInTheSourceDtype) {
  Tensor x = Tensor::from_vector<float>({1.0f, 1.00390625f, -3.3f, 65504.0f}, Shape{4}).set_requires_grad(true);
  const Tensor y = ops::cast(x, DType::kBF16);
  EXPECT_EQ(y.dtype(), DType::kBF16);
  // 1 + 2^-8 is a tie between bf16 neighbours 1 and 1 + 2^-7: to even, 1.
  EXPECT_EQ(static_cast<float>(y.data<bf16>()[1]), 1.0f);
  EXPECT_EQ(static_cast<float>(y.data<bf16>()[0]), 1.0f);
  // (The CPU has no bf16 arithmetic, so y is used once: its gradient is not summed in bf16.)
  const Tensor z = ops::cast(y, DType::kF32);
  ops::sum(ops::mul(z, z)).backward();
  ASSERT_EQ(x.grad().dtype(), DType::kF32);
  const std::vector<float> g = x.grad().to_vector<float>();
  EXPECT_FLOAT_EQ(g[0], 2.0f);  // d(y^2)/dx through the casts = 2y
  EXPECT_FLOAT_EQ(g[2], 2.0f * static_cast<float>(y.data<bf16>()[2]));
  EXPECT_TRUE(ops::cast(x, DType::kF32).is_same(x));
  EXPECT_THROW(ops::cast(x, DType::kI64), Error);
}

TEST(Amp, LossScalerSkipsOverflowsAndGrowsAfterGoodSteps) {
  std::vector<NamedParameter> params = {{"w", Tensor::zeros(Shape{4}), ParamKind::kWeight}};
  ParameterGroup group(params);
  LossScaler scaler(true, 1024.0, 3);
  EXPECT_DOUBLE_EQ(scaler.scale(Tensor::full(Shape{}, 2.0)).item(), 2048.0);
  Tensor grads = group.grads();
  grads.copy_(Tensor::from_vector<float>({1024.0f, -2048.0f, 512.0f, 0.0f}, Shape{4}));
  ASSERT_TRUE(scaler.unscale(group));
  EXPECT_EQ(group.grads().to_vector<float>(), (std::vector<float>{1.0f, -2.0f, 0.5f, 0.0f}));
  grads.copy_(Tensor::from_vector<float>({1.0f, std::numeric_limits<float>::infinity(), 0.0f, 0.0f}, Shape{4}));
  EXPECT_FALSE(scaler.unscale(group));
  EXPECT_DOUBLE_EQ(scaler.value(), 512.0);
  grads.copy_(Tensor::from_vector<float>({std::nanf(""), 0.0f, 0.0f, 0.0f}, Shape{4}));
  EXPECT_FALSE(scaler.unscale(group));
  EXPECT_DOUBLE_EQ(scaler.value(), 256.0);
  EXPECT_EQ(scaler.skipped_in_a_row(), 2);
  grads.copy_(Tensor::from_vector<float>({1.0f, 0.0f, 0.0f, 0.0f}, Shape{4}));
  ASSERT_TRUE(scaler.unscale(group));
  EXPECT_EQ(scaler.skipped_in_a_row(), 0);
  for (int i = 0; i < 3; ++i) scaler.step_taken();
  EXPECT_DOUBLE_EQ(scaler.value(), 512.0);
  EXPECT_EQ(scaler.good_steps(), 0);
  scaler.step_taken();
  LossScaler resumed(true);
  resumed.restore(true, scaler.value(), scaler.good_steps());
  EXPECT_DOUBLE_EQ(resumed.value(), 512.0);
  EXPECT_EQ(resumed.good_steps(), 1);
  // Resuming with fp16 from a run that did not scale (its checkpoint says 1): the initial scale.
  LossScaler switched(true);
  switched.restore(false, 1.0, 0);
  EXPECT_DOUBLE_EQ(switched.value(), 65536.0);
  // Disabled (bf16, f32): the identity, never a skipped step.
  LossScaler off(false);
  grads.copy_(Tensor::from_vector<float>({std::nanf(""), 0.0f, 0.0f, 0.0f}, Shape{4}));
  EXPECT_TRUE(off.unscale(group));
  EXPECT_DOUBLE_EQ(off.value(), 1.0);
}

}  // namespace
}  // namespace pmpl
