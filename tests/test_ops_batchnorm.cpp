// Batchnorm and the per-channel affine (engine/ops/batchnorm.cpp, channel_affine.cpp): OpGrad.*
// finite-difference gradients in f64, OpRef.* fast paths against plain loops (kRefTol),
// OpTorch.* against PyTorch (kTorchTol).
// The methods and their tolerances: tests/op_test_util.h.
#include "tests/op_test_util.h"

namespace pmpl {
namespace {

using test::expect_gradients_match;
using test::expect_close;
using test::f32;
using test::random;

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

TEST(OpGrad, BatchNormReLU) {
  expect_gradients_match(
      [](const Tensors& t) {
        return ops::batch_norm(t[0], t[1], t[2], Tensor(), Tensor(), true, 0.1, 1e-3, ops::BnActivation::kReLU);
      },
      {random({2, 3, 4, 5}, 58), ops::scale(random({5}, 59, false), 4.0).set_requires_grad(true), random({5}, 60)});
}

TEST(OpGrad, BatchNormSiLU) {
  expect_gradients_match(
      [](const Tensors& t) {
        return ops::batch_norm(t[0], t[1], t[2], Tensor(), Tensor(), true, 0.1, 1e-5, ops::BnActivation::kSiLU);
      },
      {random({2, 3, 4, 5}, 61), ops::scale(random({5}, 62, false), 4.0).set_requires_grad(true), random({5}, 63)});
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

// Spread inputs so the clamps of ReLU6, hardswish and hardsigmoid are reached on both sides.
TEST(OpGrad, ChannelAffine) {
  for (auto act : {ops::ChannelActivation::kNone, ops::ChannelActivation::kReLU6, ops::ChannelActivation::kHardswish,
                   ops::ChannelActivation::kReLU, ops::ChannelActivation::kSiLU, ops::ChannelActivation::kSigmoid,
                   ops::ChannelActivation::kHardsigmoid}) {
    SCOPED_TRACE(static_cast<int>(act));
    expect_gradients_match([act](const Tensors& t) { return ops::channel_affine(t[0], t[1], t[2], act); },
                           {random({2, 3, 4, 5}, 60, true, 4.0), random({5}, 61, true, 2.0), random({5}, 62)});
    expect_gradients_match([act](const Tensors& t) { return ops::channel_affine(t[0], Tensor(), t[1], act); },
                           {random({3, 7}, 63, true, 5.0), random({7}, 64)});
  }
}

// More rows than one summation chunk (256), a large mean: checks the two-pass statistics and
// the running-statistics update (unbiased variance, momentum 0.1).
TEST(OpRef, BatchNormTrain) {
  const int64_t c = 5;
  const Tensor x = ops::add(random({3, 17, 13, c}, 12, false, 2.0),
                            Tensor::full(Shape{c}, 100.0, DType::kF64));
  const Tensor gamma = random({c}, 13, false), beta = random({c}, 14, false);
  Tensor rm = Tensor::full(Shape{c}, 0.5), rv = Tensor::full(Shape{c}, 2.0);
  const Tensor y = ops::batch_norm(f32(x), f32(gamma), f32(beta), rm, rv, true, 0.1, 1e-5);
  const int64_t rows = x.numel() / c;
  std::vector<double> mean(c, 0.0), var(c, 0.0), expected(static_cast<size_t>(x.numel()));
  const double* px = x.data<double>();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < c; ++j) mean[j] += px[r * c + j] / rows;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < c; ++j) var[j] += std::pow(px[r * c + j] - mean[j], 2) / rows;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < c; ++j)
      expected[r * c + j] = (px[r * c + j] - mean[j]) / std::sqrt(var[j] + 1e-5) *
                                gamma.data<double>()[j] + beta.data<double>()[j];
  // f32 input rounding of values near 100 (ulp 8e-6) divided by a std of ~2: ~4e-6 absolute.
  expect_close(y, Tensor::from_vector(expected, x.shape()), 2e-5, test::kRefTol, "batch_norm");
  std::vector<double> rm_expected(c), rv_expected(c);
  for (int64_t j = 0; j < c; ++j) {
    rm_expected[j] = 0.9 * 0.5 + 0.1 * mean[j];
    rv_expected[j] = 0.9 * 2.0 + 0.1 * var[j] * rows / (rows - 1);
  }
  expect_close(rm, Tensor::from_vector(rm_expected, Shape{c}), test::kRefTol, test::kRefTol, "running_mean");
  expect_close(rv, Tensor::from_vector(rv_expected, Shape{c}), test::kRefTol, test::kRefTol, "running_var");
}

// The fused activations are the same arithmetic as the two ops in a row, bit for bit.
TEST(OpRef, BatchNormFusedActivationsEqualSeparate) {
  const Tensor x = f32(random({2, 5, 4, 7}, 20, false, 3.0));
  const Tensor gamma = f32(random({7}, 21, false, 3.0)), beta = f32(random({7}, 22, false, 2.0));
  const Tensor g = f32(random({2, 5, 4, 7}, 23, false));
  for (const auto act : {ops::BnActivation::kReLU6, ops::BnActivation::kHardswish, ops::BnActivation::kReLU,
                         ops::BnActivation::kSiLU}) {
    const bool relu6 = act == ops::BnActivation::kReLU6;
    SCOPED_TRACE(static_cast<int>(act));
    Tensors grads[2];
    std::vector<float> outputs[2];
    for (int fused = 0; fused < 2; ++fused) {
      Tensor xi = x.clone().set_requires_grad(true), gi = gamma.clone().set_requires_grad(true);
      Tensor bi = beta.clone().set_requires_grad(true);
      Tensor y;
      if (fused) {
        y = ops::batch_norm(xi, gi, bi, Tensor(), Tensor(), true, 0.1, 1e-5, act);
      } else {
        const Tensor z = ops::batch_norm(xi, gi, bi, Tensor(), Tensor(), true);
        y = relu6                                ? ops::relu6(z)
            : act == ops::BnActivation::kReLU   ? ops::relu(z)
            : act == ops::BnActivation::kSiLU   ? ops::silu(z)
                                                 : ops::hardswish(z);
      }
      y.backward(g);
      outputs[fused] = y.to_vector<float>();
      grads[fused] = {xi.grad(), gi.grad(), bi.grad()};
    }
    EXPECT_EQ(outputs[0], outputs[1]);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(grads[0][i].to_vector<float>(), grads[1][i].to_vector<float>());
    int saturated = 0;  // ReLU6: both edges of the clamp; hardswish: its zero below -3; ReLU: below 0
    for (float v : outputs[1]) saturated += v == 0.0f || (relu6 && v == 6.0f);
    if (act != ops::BnActivation::kSiLU) EXPECT_GT(saturated, 10) << "the input should reach the activation's flat parts";
  }
}

// One pass of act(x * scale + shift) equals the separate ops it replaces, to rounding.
TEST(OpRef, ChannelAffineEqualsSeparateOps) {
  const Tensor x = f32(random({2, 5, 4, 7}, 24, false, 4.0));
  const Tensor scale = f32(random({7}, 25, false, 2.0)), shift = f32(random({7}, 26, false, 2.0));
  using A = ops::ChannelActivation;
  const Tensor z = ops::add(ops::mul(x, scale), shift);
  expect_close(ops::channel_affine(x, scale, shift, A::kNone), z, 1e-6, 1e-6, "affine");
  expect_close(ops::channel_affine(x, scale, shift, A::kReLU6), ops::relu6(z), 1e-6, 1e-6, "affine relu6");
  expect_close(ops::channel_affine(x, scale, shift, A::kHardswish), ops::hardswish(z), 1e-6, 1e-6, "affine hardswish");
  expect_close(ops::channel_affine(x, scale, shift, A::kReLU), ops::relu(z), 1e-6, 1e-6, "affine relu");
  expect_close(ops::channel_affine(x, scale, shift, A::kSiLU), ops::silu(z), 1e-6, 1e-6, "affine silu");
  expect_close(ops::channel_affine(x, scale, shift, A::kSigmoid), ops::sigmoid(z), 1e-6, 1e-6, "affine sigmoid");
  expect_close(ops::channel_affine(x, scale, shift, A::kHardsigmoid), ops::hardsigmoid(z), 1e-6, 1e-6,
               "affine hardsigmoid");
  expect_close(ops::channel_affine(x, Tensor(), shift, A::kReLU6), ops::relu6(ops::add(x, shift)), 0, 0, "bias relu6");
  EXPECT_THROW(ops::channel_affine(x, Tensor(), f32(random({6}, 27, false))), Error);
}

TEST(OpTorch, BatchNorm) {
  const nlohmann::json& train = test::torch_fixtures().at("cases").at("batch_norm_train");
  Tensor rm = test::load_fixture(train.at("running_mean_before")), rv = test::load_fixture(train.at("running_var_before"));
  test::check_torch_case("batch_norm_train", {"x", "gamma", "beta"}, [&](const Tensors& t) {
    return ops::batch_norm(t[0], t[1], t[2], rm, rv, true, 0.1, 1e-5);
  });
  test::expect_close(rm, test::load_fixture(train.at("running_mean_after")), test::kTorchTol, test::kTorchTol, "running_mean");
  test::expect_close(rv, test::load_fixture(train.at("running_var_after")), test::kTorchTol, test::kTorchTol, "running_var");

  const nlohmann::json& eval = test::torch_fixtures().at("cases").at("batch_norm_eval");
  const Tensor erm = test::load_fixture(eval.at("running_mean_before")), erv = test::load_fixture(eval.at("running_var_before"));
  test::check_torch_case("batch_norm_eval", {"x", "gamma", "beta"}, [&](const Tensors& t) {
    return ops::batch_norm(t[0], t[1], t[2], erm, erv, false, 0.1, 1e-5);
  });
}

}  // namespace
}  // namespace pmpl
