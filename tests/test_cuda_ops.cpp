// Every op with a CUDA path against its CPU reference: the same random (never zero) f32 inputs
// and upstream gradient on both devices, outputs and input gradients compared with stated
// tolerances. Device allocations are NaN-poisoned in tests, so an element a kernel forgot to
// write fails. Skipped where no GPU is visible (written without a GPU: compiled here, run by
// tools/gpu_check.sh).
//
// Tolerances: 0 where both devices do the same float operations in the same order (per-element
// ops; nvcc builds with -fmad=false, so no contraction changes a rounding); 1e-6 relative where
// the only difference is the order of a double-accumulated sum rounded once to float; for float
// GEMMs (cuBLAS vs oneDNN/OpenBLAS) and float sums in another order, a K-term dot product of N(0,1)
// values differs by about sqrt(K) * 2^-24 * sqrt(K) (random-walk rounding over terms of size ~1):
// ~1.4e-6 for K <= 35 (kFloatSums: 1e-5), ~1e-5 for the convolutions' K = 125-162 (kGemmSums:
// 1e-4 absolute, for outputs near zero; 1e-5 relative).
#include <cmath>
#include <cstring>

#include "core/rng.h"
#include "layers/meta_pooling.h"
#include "models/registry.h"
#include "tests/test_util.h"
#include "train/adam.h"
#include "train/parameters.h"
#include "train/sgd.h"
#include "train/weight_optimizer.h"

namespace pmpl {
namespace {

struct Tol {
  double atol, rtol;
};
constexpr Tol kExact{0.0, 0.0};
constexpr Tol kSumOrder{1e-6, 1e-6};
constexpr Tol kFloatSums{1e-5, 1e-5};
constexpr Tol kGemmSums{1e-4, 1e-5};

Tensor f32(const Shape& shape, uint64_t seed, double scale = 1.0) {
  return test::random(shape, seed, false, scale, DType::kF32);
}

void expect_finite(const Tensor& t, const std::string& what) {
  for (double v : test::as_doubles(t)) {
    ASSERT_TRUE(std::isfinite(v)) << what << ": a non-finite value (an element left unwritten?)";
  }
}

// Runs fn on CPU and GPU copies of `inputs` (those that require grad get gradients), backward
// from the same random upstream gradient, and compares the output and each gradient.
void expect_gpu_matches_cpu(const std::string& what, const std::function<Tensor(const Tensors&)>& fn,
                            const Tensors& inputs, Tol out_tol, Tol grad_tol) {
  SCOPED_TRACE(what);
  Tensors outputs[2], grads[2];
  Tensor upstream;
  for (int gpu = 0; gpu < 2; ++gpu) {
    const Device d = gpu ? Device::cuda() : Device::cpu();
    Tensors xs;
    for (const Tensor& x : inputs) {
      Tensor c = x.detach().to(d);
      if (x.requires_grad()) c = c.clone().set_requires_grad(true);
      xs.push_back(c);
    }
    const Tensor y = fn(xs);
    ASSERT_EQ(y.device(), d);
    outputs[gpu].push_back(y.detach().to(Device::cpu()));
    if (!y.requires_grad()) continue;
    if (!upstream.defined()) upstream = f32(y.shape(), 99);
    y.backward(upstream.to(d));
    for (size_t i = 0; i < xs.size(); ++i) {
      if (inputs[i].requires_grad()) grads[gpu].push_back(xs[i].grad().to(Device::cpu()));
    }
  }
  expect_finite(outputs[1][0], what + " output");
  test::expect_close(outputs[1][0], outputs[0][0], out_tol.atol, out_tol.rtol, what + " output");
  ASSERT_EQ(grads[0].size(), grads[1].size());
  for (size_t i = 0; i < grads[0].size(); ++i) {
    const std::string name = what + " gradient " + std::to_string(i);
    expect_finite(grads[1][i], name);
    test::expect_close(grads[1][i], grads[0][i], grad_tol.atol, grad_tol.rtol, name);
  }
}

Tensor grad_input(const Shape& shape, uint64_t seed, double scale = 1.0) {
  return test::random(shape, seed, true, scale, DType::kF32);
}

TEST(CudaOps, Activations) {
  SKIP_WITHOUT_GPU();
  // Scale 4: values across every kink (0, 3, 6 and -3).
  const Tensors in = {grad_input({3, 7, 5, 11}, 1, 4.0)};
  expect_gpu_matches_cpu("relu", [](const Tensors& x) { return ops::relu(x[0]); }, in, kExact, kExact);
  expect_gpu_matches_cpu("relu6", [](const Tensors& x) { return ops::relu6(x[0]); }, in, kExact, kExact);
  expect_gpu_matches_cpu("hardswish", [](const Tensors& x) { return ops::hardswish(x[0]); }, in, kExact, kExact);
  expect_gpu_matches_cpu("hardsigmoid", [](const Tensors& x) { return ops::hardsigmoid(x[0]); }, in, kExact,
                         kExact);
  // exp differs between the host's libm and CUDA's by an ulp or two.
  expect_gpu_matches_cpu("sigmoid", [](const Tensors& x) { return ops::sigmoid(x[0]); }, in, kSumOrder, kSumOrder);
  expect_gpu_matches_cpu("silu", [](const Tensors& x) { return ops::silu(x[0]); }, in, kSumOrder, kSumOrder);
  // Elements moved, not computed: exact, both ways (written without a GPU). 12 channels in 3 groups
  // and in 4: a group count of 1 or of C would be the identity both ways.
  const Tensors twelve = {grad_input({3, 7, 5, 12}, 2, 4.0)};
  for (int groups : {3, 4}) {
    expect_gpu_matches_cpu("channel_shuffle",
                           [groups](const Tensors& x) { return ops::channel_shuffle(x[0], groups); }, twelve, kExact,
                           kExact);
  }
}

TEST(CudaOps, BinaryOpsAndTheirBroadcasts) {
  SKIP_WITHOUT_GPU();
  const std::vector<std::pair<Shape, Shape>> shapes = {
      {{2, 5, 7, 6}, {2, 5, 7, 6}}, {{2, 5, 7, 6}, {2, 1, 7, 6}}, {{2, 5, 7, 6}, {6}}, {{2, 5, 1, 1}, {1, 1, 7, 6}}};
  for (const auto& [sa, sb] : shapes) {
    const Tensors in = {grad_input(sa, 1), grad_input(sb, 2)};
    const std::string tag = " " + sa.str() + " " + sb.str();
    // Gradients of a broadcast operand are double sums in another order.
    expect_gpu_matches_cpu("add" + tag, [](const Tensors& x) { return ops::add(x[0], x[1]); }, in, kExact, kSumOrder);
    expect_gpu_matches_cpu("sub" + tag, [](const Tensors& x) { return ops::sub(x[0], x[1]); }, in, kExact, kSumOrder);
    expect_gpu_matches_cpu("mul" + tag, [](const Tensors& x) { return ops::mul(x[0], x[1]); }, in, kExact, kSumOrder);
  }
}

TEST(CudaOps, ScaleAxpyAndSums) {
  SKIP_WITHOUT_GPU();
  const Tensors in = {grad_input({3, 9, 7, 5}, 3)};
  expect_gpu_matches_cpu("scale", [](const Tensors& x) { return ops::scale(x[0], -0.37); }, in, kExact, kExact);
  for (const std::vector<int>& axes : std::vector<std::vector<int>>{{}, {0}, {1, 2}, {3}, {0, 1, 2}}) {
    const std::string tag = "axes " + std::to_string(axes.size()) + (axes.empty() ? "" : std::to_string(axes[0]));
    expect_gpu_matches_cpu("sum " + tag, [axes](const Tensors& x) { return ops::sum(x[0], axes); }, in, kSumOrder,
                           kExact);
    expect_gpu_matches_cpu("mean " + tag, [axes](const Tensors& x) { return ops::mean(x[0], axes, true); }, in,
                           kSumOrder, kExact);
  }
  Tensor dst[2];
  const Tensor src = f32({1000}, 4), start = f32({1000}, 5);
  for (int gpu = 0; gpu < 2; ++gpu) {
    dst[gpu] = start.to(gpu ? Device::cuda() : Device::cpu()).clone();
    ops::axpy_(dst[gpu], 0.625, src.to(dst[gpu].device()));
    ops::scale_(dst[gpu], 1.5);
  }
  test::expect_close(dst[1].to(Device::cpu()), dst[0], 0.0, 0.0, "axpy_ then scale_");
}

TEST(CudaOps, WeightedSum) {
  SKIP_WITHOUT_GPU();
  Tensors in;
  for (int j = 0; j < 8; ++j) in.push_back(grad_input({3, 9, 7, 5}, 10 + static_cast<uint64_t>(j)));
  in.push_back(grad_input({8}, 20));
  expect_gpu_matches_cpu(
      "weighted_sum",
      [](const Tensors& x) { return ops::weighted_sum(Tensors(x.begin(), x.begin() + 8), x[8]); }, in, kExact,
      kSumOrder);
}

TEST(CudaOps, NormalizeImagesAndDropout) {
  SKIP_WITHOUT_GPU();
  Generator gen(7);
  const Tensor bytes = Tensor::uniform({2, 9, 11, 3}, 0.0, 256.0, gen).to(DType::kU8);
  const float mean[3] = {0.485f, 0.456f, 0.406f}, stddev[3] = {0.229f, 0.224f, 0.225f};
  test::expect_close(ops::normalize_images(bytes.to(Device::cuda()), mean, stddev).to(Device::cpu()),
                     ops::normalize_images(bytes, mean, stddev), 0.0, 0.0, "normalize_images");
  for (double p : {0.2, 0.5}) {
    expect_gpu_matches_cpu(
        "dropout",
        [p](const Tensors& x) {
          Generator g(11);
          return ops::dropout(x[0], p, true, g);
        },
        {grad_input({4, 1000}, 8)}, kExact, kExact);
  }
}

TEST(CudaOps, ChannelAffine) {
  SKIP_WITHOUT_GPU();
  for (auto act : {ops::ChannelActivation::kNone, ops::ChannelActivation::kReLU6, ops::ChannelActivation::kHardswish,
                   ops::ChannelActivation::kReLU, ops::ChannelActivation::kSiLU, ops::ChannelActivation::kSigmoid,
                   ops::ChannelActivation::kHardsigmoid}) {
    for (bool with_scale : {true, false}) {
      const Tensors in = {grad_input({2, 5, 7, 19}, 1, 3.0), grad_input({19}, 2), grad_input({19}, 3)};
      expect_gpu_matches_cpu(
          "channel_affine act " + std::to_string(static_cast<int>(act)) + (with_scale ? " scaled" : ""),
          [act, with_scale](const Tensors& x) {
            return ops::channel_affine(x[0], with_scale ? x[1] : Tensor(), x[2], act);
          },
          with_scale ? in : Tensors{in[0], in[1].detach(), in[2]}, kExact, kSumOrder);
    }
  }
}

TEST(CudaOps, SoftmaxAndCrossEntropy) {
  SKIP_WITHOUT_GPU();
  const Tensors in = {grad_input({37, 10}, 1, 3.0)};
  expect_gpu_matches_cpu("softmax", [](const Tensors& x) { return ops::softmax(x[0]); }, in, kSumOrder, kSumOrder);
  expect_gpu_matches_cpu("log_softmax", [](const Tensors& x) { return ops::log_softmax(x[0]); }, in, kSumOrder,
                         kSumOrder);
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < 37; ++i) labels.push_back((i * 7 + 3) % 10);
  const Tensor host_labels = Tensor::from_vector(labels, Shape{37});
  for (double eps : {0.0, 0.1}) {
    for (bool labels_on_gpu : {false, true}) {
      expect_gpu_matches_cpu(
          "cross_entropy",
          [&](const Tensors& x) {
            return ops::cross_entropy(x[0], labels_on_gpu ? host_labels.to(x[0].device()) : host_labels, eps);
          },
          in, kSumOrder, kSumOrder);
    }
  }
}

// A bad label already on the GPU is not checked on the host (that would stall the step): the
// kernel gives a NaN loss instead of reading out of bounds; on the host it is a clear error.
TEST(CudaOps, OutOfRangeLabelsNeverReadOutOfBounds) {
  SKIP_WITHOUT_GPU();
  const Tensor logits = f32({3, 10}, 1).to(Device::cuda());
  const Tensor bad = Tensor::from_vector<int64_t>({1, 10, 2}, Shape{3});
  EXPECT_THROW(ops::cross_entropy(logits, bad, 0.1), Error);
  EXPECT_TRUE(std::isnan(ops::cross_entropy(logits, bad.to(Device::cuda()), 0.1).item()));
}

TEST(CudaOps, GlobalAndStripPools) {
  SKIP_WITHOUT_GPU();
  for (const Shape& shape : std::vector<Shape>{{2, 7, 5, 13}, {3, 1, 1, 8}, {1, 14, 14, 40}}) {
    const Tensors in = {grad_input(shape, 1)};
    expect_gpu_matches_cpu("global_avg_pool " + shape.str(), [](const Tensors& x) { return ops::global_avg_pool(x[0]); },
                           in, kSumOrder, kExact);
    expect_gpu_matches_cpu("strip_pool " + shape.str(), [](const Tensors& x) { return ops::strip_pool(x[0]); }, in,
                           kSumOrder, kExact);
  }
}

TEST(CudaOps, BatchNormTrainingAndEval) {
  SKIP_WITHOUT_GPU();
  for (const Shape& shape : std::vector<Shape>{{4, 5, 7, 24}, {2, 3, 3, 13}, {300, 3}}) {
    for (bool training : {true, false}) {
      for (const auto act : {ops::BnActivation::kNone, ops::BnActivation::kReLU6, ops::BnActivation::kHardswish,
                             ops::BnActivation::kReLU, ops::BnActivation::kSiLU}) {
        const int64_t c = shape[shape.rank() - 1];
        // A mean far from zero (as after ReLU6) and gamma with both signs.
        const Tensor x = ops::add(f32(shape, 1, 2.0), Tensor::full({c}, 1.5)).set_requires_grad(true);
        const Tensors in = {x, grad_input({c}, 2), grad_input({c}, 3)};
        Tensor running[2][2];
        int call = 0;
        expect_gpu_matches_cpu(
            "batch_norm " + shape.str() + (training ? " train" : " eval") + " act " +
                std::to_string(static_cast<int>(act)),
            [&](const Tensors& t) {
              Tensor& mean = running[call][0];
              Tensor& var = running[call][1];
              mean = f32({c}, 4, 0.3).to(t[0].device());
              var = ops::add(ops::mul(f32({c}, 5), f32({c}, 5)), Tensor::full({c}, 0.5)).to(t[0].device());
              ++call;
              return ops::batch_norm(t[0], t[1], t[2], mean, var, training, 0.1, 1e-5, act);
            },
            in, kFloatSums, Tol{1e-5, 1e-4});
        for (int i = 0; i < 2; ++i) {
          test::expect_close(running[1][i].to(Device::cpu()), running[0][i], 1e-6, 1e-6, "running statistics");
        }
      }
    }
  }
}

// --sync-bn on the GPU: the device sums go through the reducer between the kernels, as the CPU
// path's do. The reducer here pretends a second process with the same batch (doubles every sum
// and the row count), on the host for either device, so both paths see the same all-reduce.
TEST(CudaOps, SynchronisedBatchNormMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  const ops::SumReducer twice = [](const Tensor& sums) {
    Tensor host = sums.to(Device::cpu()).clone();
    ops::scale_(host, 2.0);
    Tensor(sums).copy_(host);
  };
  const int64_t c = 24;
  const Tensor x = ops::add(f32({4, 5, 7, c}, 1, 2.0), Tensor::full({c}, 1.5)).set_requires_grad(true);
  Tensor running[2][2];
  int call = 0;
  expect_gpu_matches_cpu(
      "synchronised batch_norm",
      [&](const Tensors& t) {
        running[call][0] = f32({c}, 4, 0.3).to(t[0].device());
        running[call][1] = Tensor::ones({c}).to(t[0].device());
        Tensor& mean = running[call][0];
        Tensor& var = running[call][1];
        ++call;
        return ops::batch_norm(t[0], t[1], t[2], mean, var, true, 0.1, 1e-5, ops::BnActivation::kReLU6, &twice);
      },
      {x, grad_input({c}, 2), grad_input({c}, 3)}, kFloatSums, Tol{1e-5, 1e-4});
  for (int i = 0; i < 2; ++i) {
    test::expect_close(running[1][i].to(Device::cpu()), running[0][i], 1e-6, 1e-6, "running statistics");
  }
}

TEST(CudaOps, MatmulLinearAndPointwiseConv) {
  SKIP_WITHOUT_GPU();
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      const Tensors in = {grad_input(ta ? Shape{23, 17} : Shape{17, 23}, 1), grad_input(tb ? Shape{19, 23} : Shape{23, 19}, 2)};
      expect_gpu_matches_cpu("matmul " + std::to_string(ta) + std::to_string(tb),
                             [ta, tb](const Tensors& x) { return ops::matmul(x[0], x[1], ta, tb); }, in, kFloatSums,
                             kFloatSums);
    }
  }
  expect_gpu_matches_cpu("linear", [](const Tensors& x) { return ops::linear(x[0], x[1], x[2]); },
                         {grad_input({5, 7, 23}, 3), grad_input({31, 23}, 4), grad_input({31}, 5)}, kFloatSums,
                         kFloatSums);
  expect_gpu_matches_cpu("pointwise_conv", [](const Tensors& x) { return ops::pointwise_conv(x[0], x[1]); },
                         {grad_input({2, 9, 7, 24}, 6), grad_input({40, 1, 1, 24}, 7)}, kFloatSums, kGemmSums);
}

TEST(CudaOps, DenseConv2d) {
  SKIP_WITHOUT_GPU();
  struct Case {
    Shape x, w;
    int stride, padding;
  };
  // The stem (3x3 stride 2 from 3 channels, odd sizes), a 5x5, and a 1x1 (no column matrix).
  for (const Case& c : std::vector<Case>{{{2, 17, 15, 3}, {8, 3, 3, 3}, 2, 1},
                                         {{2, 9, 9, 5}, {6, 5, 5, 5}, 1, 2},
                                         {{3, 4, 6, 7}, {5, 1, 1, 7}, 1, 0}}) {
    expect_gpu_matches_cpu(
        "conv2d " + c.x.str() + " " + c.w.str(),
        [&c](const Tensors& x) { return ops::conv2d(x[0], x[1], c.stride, c.padding); },
        {grad_input(c.x, 1), grad_input(c.w, 2)}, kGemmSums, kGemmSums);
  }
}

// Dedicated pool kernels (core/kernels/pool.h, shared with the CPU op): forward, the max taps
// and the gathered input gradients in the CPU's order, so bit for bit, for the enhancers' pools
// and other strides and paddings, with ties (NaN handling is the shared function's, checked on
// every element by PoolKernels.EqualTheCpuOpOnEveryElement).
TEST(CudaOps, MaxAndAvgPools) {
  SKIP_WITHOUT_GPU();
  struct Case {
    int k, stride, padding;
  };
  for (const Case& pc : std::vector<Case>{{3, 1, 1}, {5, 1, 2}, {7, 1, 3}, {3, 2, 1}, {2, 2, 0}}) {
    for (const Shape& shape : std::vector<Shape>{{2, 9, 11, 6}, {1, 2, 3, 5}}) {
      std::vector<float> v = test::random(shape, static_cast<uint64_t>(pc.k), false, 2.0, DType::kF32).to_vector<float>();
      for (float& e : v) e = std::round(e);  // ties in every window
      const Tensors in = {Tensor::from_vector(v, shape).set_requires_grad(true)};
      const std::string tag = " k" + std::to_string(pc.k) + " s" + std::to_string(pc.stride) + " " + shape.str();
      expect_gpu_matches_cpu("max_pool2d" + tag,
                             [pc](const Tensors& x) { return ops::max_pool2d(x[0], pc.k, pc.stride, pc.padding); }, in,
                             kExact, kExact);
      expect_gpu_matches_cpu("avg_pool2d" + tag,
                             [pc](const Tensors& x) { return ops::avg_pool2d(x[0], pc.k, pc.stride, pc.padding); }, in,
                             kExact, kExact);
    }
  }
}

TEST(CudaOps, ConcatSplitAndPermute) {
  SKIP_WITHOUT_GPU();
  const Tensors in = {grad_input({2, 3, 5, 4}, 1), grad_input({2, 3, 2, 4}, 2)};
  expect_gpu_matches_cpu(
      "concat then split",
      [](const Tensors& x) {
        const Tensor joined = ops::concat({x[0], x[1]}, 2);
        const Tensors parts = ops::split(joined, {3, 4}, 2);
        return ops::mul(parts[1], parts[1]);
      },
      in, kExact, kExact);
  expect_gpu_matches_cpu("permute", [](const Tensors& x) { return ops::permute(x[0], {0, 3, 1, 2}); }, {in[0]}, kExact,
                         kExact);
}

// Optimiser steps share their per-element arithmetic (core/kernels/optim.h): equal bit for
// bit, with an inactive parameter left alone and weight decay only on the weights. The gradient
// norm is a double sum in another order.
TEST(CudaOps, OptimizersMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  Tensor values[2][3];
  std::vector<Tensor> states[2];
  double norms[2];
  for (int gpu = 0; gpu < 2; ++gpu) {
    const Device d = gpu ? Device::cuda() : Device::cpu();
    std::vector<NamedParameter> params = {{"a", f32({300}, 1).to(d), ParamKind::kWeight},
                                          {"b", f32({7, 5}, 2).to(d), ParamKind::kWeight},
                                          {"c", f32({8}, 3).to(d), ParamKind::kNoDecay}};
    ParameterGroup group(params);
    group.deactivate("b");
    Sgd sgd(group, SgdOptions{0.9, true, 4e-5});
    Adam adam(group, AdamOptions{});
    const auto rmsprop = make_weight_optimizer(group, {"rmsproptf", 0.9, false, 1e-2, 1e-3});
    const auto adamw = make_weight_optimizer(group, {"adamw", 0.0, false, 0.05, 1e-8, 0.9, 0.999});
    for (int step = 0; step < 6; ++step) {
      Tensor grads = group.grads();
      grads.copy_(f32({group.numel()}, 10 + static_cast<uint64_t>(step), 10.0));
      norms[gpu] = group.grad_sum_squares();
      group.clip_gradients(5.0);
      if (step == 1) adam.step();
      else if (step == 2 || step == 4) rmsprop->step(0.01 * step);
      else if (step == 3 || step == 5) adamw->step(1e-3 * step);
      else sgd.step(0.1);
    }
    for (int i = 0; i < 3; ++i) values[gpu][i] = params[static_cast<size_t>(i)].tensor.to(Device::cpu());
    values[gpu][1] = sgd.momentum_buffer().to(Device::cpu());
    for (const auto& [name, t] : rmsprop->state()) states[gpu].push_back(t.to(Device::cpu()));
    for (const auto& [name, t] : adamw->state()) states[gpu].push_back(t.to(Device::cpu()));
  }
  EXPECT_NEAR(norms[1], norms[0], 1e-9 * norms[0]);
  test::expect_close(values[1][0], values[0][0], 0.0, 0.0, "weights after SGD, Adam, RMSpropTF and AdamW");
  test::expect_close(values[1][1], values[0][1], 0.0, 0.0, "momentum buffer");
  test::expect_close(values[1][2], values[0][2], 0.0, 0.0, "non-decayed parameters");
  ASSERT_EQ(states[0].size(), 4u);
  for (size_t i = 0; i < states[0].size(); ++i) {
    test::expect_close(states[1][i], states[0][i], 0.0, 0.0, "RMSpropTF and AdamW state");
  }
}

// LAMB: the per-element arithmetic is shared, the norms (global and per tensor) are double sums in
// another order, so the GPU's steps agree to float rounding; the inactive tensor stays as it was.
TEST(CudaOps, LambMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  Tensor values[2][3];
  for (int gpu = 0; gpu < 2; ++gpu) {
    const Device d = gpu ? Device::cuda() : Device::cpu();
    std::vector<NamedParameter> params = {{"a", f32({3000}, 1).to(d), ParamKind::kWeight},
                                          {"b", f32({7, 5}, 2).to(d), ParamKind::kWeight},
                                          {"c", f32({8}, 3).to(d), ParamKind::kNoDecay}};
    ParameterGroup group(params);
    group.deactivate("b");
    const auto lamb = make_weight_optimizer(group, {"lamb", 0.0, false, 0.01, 1e-6, 0.9, 0.999});
    for (int step = 0; step < 4; ++step) {
      Tensor grads = group.grads();
      grads.copy_(f32({group.numel()}, 20 + static_cast<uint64_t>(step), step == 0 ? 0.01 : 3.0));
      lamb->step(1e-2 * (step + 1));
    }
    for (int i = 0; i < 3; ++i) values[gpu][i] = params[static_cast<size_t>(i)].tensor.to(Device::cpu());
  }
  test::expect_close(values[1][0], values[0][0], 1e-6, 1e-5, "LAMB, decayed");
  test::expect_close(values[1][1], values[0][1], 0.0, 0.0, "LAMB, inactive");
  test::expect_close(values[1][2], values[0][2], 1e-6, 1e-5, "LAMB, not decayed");
}

// Whole networks: eval logits are well conditioned; in training mode, batch statistics over a
// tiny batch and ReLU6 kinks amplify float rounding (measured on the CPU: PyTorch's own f32 runs
// differ from f64 by a median 0.8% per gradient tensor), so gradients are held to a median.
void expect_network_matches(const std::string& name, ModelConfig config) {
  SCOPED_TRACE(name);
  const Tensor x = f32({4, 32, 32, 3}, 1);
  std::vector<int64_t> labels = {1, 3, 5, 7};
  const Tensor y = Tensor::from_vector(labels, Shape{4});
  Tensor eval_logits[2], loss[2];
  std::vector<NamedParameter> params[2];
  for (int gpu = 0; gpu < 2; ++gpu) {
    const Device d = gpu ? Device::cuda() : Device::cpu();
    const auto model = build_model(name, config);
    model->to(d);
    model->eval();
    {
      NoGradGuard no_grad;
      eval_logits[gpu] = model->forward(x.to(d)).to(Device::cpu());
    }
    model->train();
    const Tensor l = ops::cross_entropy(model->forward(x.to(d)), y, 0.1);
    l.backward();
    loss[gpu] = l.to(Device::cpu());
    params[gpu] = model->parameters();
  }
  expect_finite(eval_logits[1], "eval logits");
  test::expect_close(eval_logits[1], eval_logits[0], 1e-4, 1e-4, "eval logits");
  test::expect_close(loss[1], loss[0], 1e-4, 1e-4, "training loss");
  std::vector<double> errors;
  for (size_t i = 0; i < params[0].size(); ++i) {
    errors.push_back(test::relative_error(params[1][i].tensor.grad(), params[0][i].tensor.grad()));
  }
  std::sort(errors.begin(), errors.end());
  EXPECT_LT(errors[errors.size() / 2], 1e-2) << "median relative gradient error";
  EXPECT_LT(errors.back(), 0.2) << "worst relative gradient error";
}

TEST(CudaOps, MobileNetV2MatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  expect_network_matches("mobilenetv2", test::tiny_config(10));
}

TEST(CudaOps, MetaPoolingSearchNetworkMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  // Both devices search with ops::meta_pool_mix (CPU op vs CUDA kernels).
  expect_network_matches("mobilenetv2_mp", test::tiny_config(10));
}

// MobileNetV3 (squeeze-and-excitation, 5x5 depthwise, hardswish and ReLU batchnorms, eps 1e-3),
// with searching enhancers in the Large one. Written without a GPU (issue #15): first run pending.
TEST(CudaOps, MobileNetV3MatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  expect_network_matches("mobilenetv3_small", test::tiny_config(10));
  expect_network_matches("mobilenetv3_large_mp", test::tiny_config(10));
}

// ---- mixed precision ----

// Device conversions between every pair of dtypes equal the host's bit for bit: round to nearest
// even into bf16 and f16 (subnormals, overflow to infinity at 65520), NaN stays NaN, and float to
// integer saturates (NaN to 0) rather than doing what the hardware happens to do.
TEST(CudaOps, CastsMatchTheHost) {
  SKIP_WITHOUT_GPU();
  const DType all[] = {DType::kF32, DType::kF64, DType::kBF16, DType::kF16, DType::kI32, DType::kI64, DType::kU8};
  std::vector<float> special = {NAN, INFINITY, -INFINITY, 65504.0f, 65519.0f, 65520.0f, 70000.0f, -70000.0f,
                                1e-8f, -3e-6f, 6e-5f, -0.0f, 255.5f, 256.0f, -1.5f, 3e9f, -3e9f, 1e20f, 1.00390625f};
  for (double v : test::as_doubles(f32({1000}, 1, 3000.0))) special.push_back(static_cast<float>(v));
  const Tensor values = Tensor::from_vector(special, Shape{static_cast<int64_t>(special.size())});
  for (DType from : all) {
    const Tensor src = values.to(from);
    for (DType to : all) {
      const Tensor host = src.to(to);
      const Tensor device = src.to(Device::cuda()).to(to).to(Device::cpu());
      ASSERT_EQ(device.dtype(), to);
      EXPECT_EQ(std::memcmp(host.raw_data(), device.raw_data(), host.nbytes()), 0)
          << dtype_name(from) << " -> " << dtype_name(to);
    }
  }
}

// fn on GPU copies of `inputs` in f32 and in `dtype` (floating inputs that require grad are
// cast; `keep_f32` names inputs that stay f32, as batchnorm's parameters do): the output and the
// gradients agree to `tol` in relative L2 norm. bf16 keeps 8 significant bits (a rounding error
// of 2^-9 relative per value), f16 11 bits; the tolerances allow for a few roundings in a row.
void expect_low_precision_follows_f32(const std::string& what, const std::function<Tensor(const Tensors&)>& fn,
                                      const Tensors& inputs, DType dtype, double tol,
                                      const std::vector<bool>& keep_f32 = {}) {
  SCOPED_TRACE(what + " in " + std::string(dtype_name(dtype)));
  Tensor outputs[2];
  Tensors grads[2];
  Tensor upstream;
  for (int low = 0; low < 2; ++low) {
    Tensors xs;
    for (size_t i = 0; i < inputs.size(); ++i) {
      const bool keep = i < keep_f32.size() && keep_f32[i];
      Tensor c = inputs[i].detach().to(Device::cuda());
      if (low && !keep && is_floating(c.dtype())) c = c.to(dtype);
      if (inputs[i].requires_grad()) c = c.clone().set_requires_grad(true);
      xs.push_back(c);
    }
    const Tensor y = fn(xs);
    ASSERT_EQ(y.dtype(), low ? dtype : DType::kF32);
    outputs[low] = y.detach().to(Device::cpu()).to(DType::kF32);
    if (!y.requires_grad()) continue;
    if (!upstream.defined()) upstream = f32(y.shape(), 98);
    y.backward(upstream.to(Device::cuda()).to(y.dtype()));
    for (size_t i = 0; i < xs.size(); ++i) {
      if (inputs[i].requires_grad()) grads[low].push_back(xs[i].grad().to(Device::cpu()).to(DType::kF32));
    }
  }
  EXPECT_LT(test::relative_error(outputs[1], outputs[0]), tol) << "output";
  for (size_t i = 0; i < grads[0].size(); ++i) {
    EXPECT_LT(test::relative_error(grads[1][i], grads[0][i]), tol) << "gradient " << i;
  }
}

TEST(CudaOps, LowPrecisionOpsFollowF32) {
  SKIP_WITHOUT_GPU();
  for (const auto& [dtype, tol] : std::vector<std::pair<DType, double>>{{DType::kBF16, 2e-2}, {DType::kF16, 3e-3}}) {
    const Tensors act = {grad_input({3, 7, 5, 11}, 1, 4.0)};
    expect_low_precision_follows_f32("relu6", [](const Tensors& x) { return ops::relu6(x[0]); }, act, dtype, tol);
    expect_low_precision_follows_f32("hardswish", [](const Tensors& x) { return ops::hardswish(x[0]); }, act, dtype, tol);
    expect_low_precision_follows_f32("sigmoid", [](const Tensors& x) { return ops::sigmoid(x[0]); }, act, dtype, tol);
    expect_low_precision_follows_f32("mul broadcast", [](const Tensors& x) { return ops::mul(x[0], x[1]); },
                                     {grad_input({2, 5, 7, 6}, 2), grad_input({2, 1, 7, 6}, 3)}, dtype, tol);
    expect_low_precision_follows_f32("add", [](const Tensors& x) { return ops::add(x[0], x[1]); },
                                     {grad_input({2, 5, 7, 6}, 4), grad_input({2, 5, 7, 6}, 5)}, dtype, tol);
    expect_low_precision_follows_f32(
        "batch_norm relu6",
        [](const Tensors& x) {
          return ops::batch_norm(x[0], x[1], x[2], Tensor(), Tensor(), true, 0.1, 1e-5, ops::BnActivation::kReLU6);
        },
        {grad_input({4, 5, 7, 24}, 6, 2.0), grad_input({24}, 7), grad_input({24}, 8)}, dtype, tol,
        {false, true, true});
    expect_low_precision_follows_f32(
        "depthwise_conv2d", [](const Tensors& x) { return ops::depthwise_conv2d(x[0], x[1], 2, 1); },
        {grad_input({2, 9, 7, 13}, 9), grad_input({13, 3, 3}, 10)}, dtype, tol);
    // C = 16: the kernels' 8-channel (16-byte) groups of bf16 / f16; 13 above runs one channel each.
    expect_low_precision_follows_f32(
        "depthwise_conv2d channel groups", [](const Tensors& x) { return ops::depthwise_conv2d(x[0], x[1], 1, 2); },
        {grad_input({2, 9, 7, 16}, 41), grad_input({16, 5, 5}, 42)}, dtype, tol);
    // The mixture (and, with {1, 20, 19, 18}, several row, column and channel tiles of its
    // kernels): x, the strip attention a_h / a_w, and the f32 weights.
    for (const Shape& shape : std::vector<Shape>{{2, 9, 11, 6}, {1, 20, 19, 18}}) {
      expect_low_precision_follows_f32(
          "meta_pool_mix", [](const Tensors& x) { return ops::meta_pool_mix(x[0], x[1], x[2], x[3]); },
          {grad_input(shape, 11), grad_input({shape[0], shape[1], 1, shape[3]}, 12),
           grad_input({shape[0], 1, shape[2], shape[3]}, 43), grad_input({8}, 13)},
          dtype, tol, {false, false, false, true});
    }
    expect_low_precision_follows_f32(
        "conv2d stem", [](const Tensors& x) { return ops::conv2d(x[0], x[1], 2, 1); },
        {grad_input({2, 17, 15, 3}, 14), grad_input({8, 3, 3, 3}, 15)}, dtype, tol);
    expect_low_precision_follows_f32("linear", [](const Tensors& x) { return ops::linear(x[0], x[1], x[2]); },
                                     {grad_input({5, 7, 23}, 16), grad_input({31, 23}, 17), grad_input({31}, 18)},
                                     dtype, tol);
    expect_low_precision_follows_f32("global_avg_pool", [](const Tensors& x) { return ops::global_avg_pool(x[0]); },
                                     {grad_input({2, 7, 5, 13}, 19)}, dtype, tol);
    expect_low_precision_follows_f32("strip_pool", [](const Tensors& x) { return ops::strip_pool(x[0]); },
                                     {grad_input({2, 7, 5, 13}, 20)}, dtype, tol);
    expect_low_precision_follows_f32("max_pool2d", [](const Tensors& x) { return ops::max_pool2d(x[0], 5, 1, 2); },
                                     {grad_input({2, 9, 11, 6}, 21)}, dtype, tol);
  }
}

// A whole network in bf16 mixed precision follows its f32 run on the same GPU: logits and loss
// to a few bf16 roundings, gradients (f32, through the casts) to a median and a worst case.
TEST(CudaOps, MixedPrecisionNetworksFollowF32) {
  SKIP_WITHOUT_GPU();
  for (const char* name : {"mobilenetv2", "mobilenetv2_mp"}) {
    SCOPED_TRACE(name);
    const Tensor x = f32({4, 32, 32, 3}, 1).to(Device::cuda());
    const Tensor labels = Tensor::from_vector<int64_t>({1, 3, 5, 7}, Shape{4});
    Tensor logits[2], loss[2];
    std::vector<NamedParameter> params[2];
    for (int low = 0; low < 2; ++low) {
      const auto model = build_model(name, test::tiny_config(10));
      model->to(Device::cuda());
      if (low) model->set_compute_dtype(DType::kBF16);
      model->eval();
      {
        NoGradGuard no_grad;
        logits[low] = model->forward(x).to(Device::cpu());
      }
      ASSERT_EQ(logits[low].dtype(), DType::kF32);
      model->train();
      const Tensor l = ops::cross_entropy(model->forward(x), labels, 0.1);
      l.backward();
      loss[low] = l.to(Device::cpu());
      params[low] = model->parameters();
    }
    EXPECT_LT(test::relative_error(logits[1], logits[0]), 5e-2) << "eval logits";
    EXPECT_LT(test::relative_error(loss[1], loss[0]), 2e-2) << "loss";
    std::vector<double> errors;
    for (size_t i = 0; i < params[0].size(); ++i) {
      ASSERT_EQ(params[1][i].tensor.grad().dtype(), DType::kF32) << params[1][i].name;
      errors.push_back(test::relative_error(params[1][i].tensor.grad(), params[0][i].tensor.grad()));
    }
    std::sort(errors.begin(), errors.end());
    EXPECT_LT(errors[errors.size() / 2], 0.1) << "median relative gradient error";
    EXPECT_LT(errors.back(), 1.0) << "worst relative gradient error";
  }
}

}  // namespace
}  // namespace pmpl
