// OpRef.*: each fast path (GEMM conv, im2col, channel-vectorised loops, chunked sums) against a
// plain loop written from the definition, in f64. The op runs in f32, so tolerances are f32's:
// a sum of K products of O(1) values carries ~sqrt(K) * 6e-8 relative error; with K <= 300 here,
// 1e-5 relative plus 1e-5 absolute (for results near zero) leaves a wide margin over rounding
// while any indexing mistake is off by O(1).
#include <cmath>
#include <limits>

#include "tests/test_util.h"

namespace pmpl {
namespace {

using test::expect_close;
using test::random;

constexpr double kTol = 1e-5;

Tensor f32(const Tensor& t) { return t.detach().to(DType::kF32); }

Tensor conv2d_naive(const Tensor& x, const Tensor& w, int stride, int pad) {
  const int64_t n = x.dim(0), h = x.dim(1), wd = x.dim(2), ci = x.dim(3);
  const int64_t co = w.dim(0), kh = w.dim(1), kw = w.dim(2);
  const int64_t ho = (h + 2 * pad - kh) / stride + 1, wo = (wd + 2 * pad - kw) / stride + 1;
  const double* px = x.data<double>();
  const double* pw = w.data<double>();
  std::vector<double> y(static_cast<size_t>(n * ho * wo * co), 0.0);
  for (int64_t b = 0; b < n; ++b)
    for (int64_t oh = 0; oh < ho; ++oh)
      for (int64_t ow = 0; ow < wo; ++ow)
        for (int64_t o = 0; o < co; ++o) {
          double acc = 0.0;
          for (int64_t i = 0; i < kh; ++i)
            for (int64_t j = 0; j < kw; ++j)
              for (int64_t c = 0; c < ci; ++c) {
                const int64_t ih = oh * stride - pad + i, iw = ow * stride - pad + j;
                if (ih < 0 || ih >= h || iw < 0 || iw >= wd) continue;
                acc += px[((b * h + ih) * wd + iw) * ci + c] * pw[((o * kh + i) * kw + j) * ci + c];
              }
          y[static_cast<size_t>(((b * ho + oh) * wo + ow) * co + o)] = acc;
        }
  return Tensor::from_vector(y, Shape{n, ho, wo, co});
}

Tensor depthwise_naive(const Tensor& x, const Tensor& w, int stride, int pad) {
  const int64_t n = x.dim(0), h = x.dim(1), wd = x.dim(2), c = x.dim(3), k = w.dim(1);
  const int64_t ho = (h + 2 * pad - k) / stride + 1, wo = (wd + 2 * pad - k) / stride + 1;
  const double* px = x.data<double>();
  const double* pw = w.data<double>();
  std::vector<double> y(static_cast<size_t>(n * ho * wo * c), 0.0);
  for (int64_t b = 0; b < n; ++b)
    for (int64_t oh = 0; oh < ho; ++oh)
      for (int64_t ow = 0; ow < wo; ++ow)
        for (int64_t ch = 0; ch < c; ++ch) {
          double acc = 0.0;
          for (int64_t i = 0; i < k; ++i)
            for (int64_t j = 0; j < k; ++j) {
              const int64_t ih = oh * stride - pad + i, iw = ow * stride - pad + j;
              if (ih < 0 || ih >= h || iw < 0 || iw >= wd) continue;
              acc += px[((b * h + ih) * wd + iw) * c + ch] * pw[(ch * k + i) * k + j];
            }
          y[static_cast<size_t>(((b * ho + oh) * wo + ow) * c + ch)] = acc;
        }
  return Tensor::from_vector(y, Shape{n, ho, wo, c});
}

// Pools over an explicitly padded copy: -inf padding for max, zeros for avg, and avg divides by
// the full k * k window (PyTorch's count_include_pad=True).
Tensor pool_naive(const Tensor& x, int k, int stride, int pad, bool is_max) {
  const int64_t n = x.dim(0), h = x.dim(1), wd = x.dim(2), c = x.dim(3);
  const int64_t hp = h + 2 * pad, wp = wd + 2 * pad;
  const double fill = is_max ? -std::numeric_limits<double>::infinity() : 0.0;
  std::vector<double> padded(static_cast<size_t>(n * hp * wp * c), fill);
  const double* px = x.data<double>();
  for (int64_t b = 0; b < n; ++b)
    for (int64_t i = 0; i < h; ++i)
      for (int64_t j = 0; j < wd; ++j)
        for (int64_t ch = 0; ch < c; ++ch)
          padded[static_cast<size_t>(((b * hp + i + pad) * wp + j + pad) * c + ch)] =
              px[((b * h + i) * wd + j) * c + ch];
  const int64_t ho = (hp - k) / stride + 1, wo = (wp - k) / stride + 1;
  std::vector<double> y;
  for (int64_t b = 0; b < n; ++b)
    for (int64_t oh = 0; oh < ho; ++oh)
      for (int64_t ow = 0; ow < wo; ++ow)
        for (int64_t ch = 0; ch < c; ++ch) {
          double acc = fill;
          for (int64_t i = 0; i < k; ++i)
            for (int64_t j = 0; j < k; ++j) {
              const double v = padded[static_cast<size_t>(((b * hp + oh * stride + i) * wp + ow * stride + j) * c + ch)];
              acc = is_max ? std::max(acc, v) : acc + v;
            }
          y.push_back(is_max ? acc : acc / static_cast<double>(k * k));
        }
  return Tensor::from_vector(y, Shape{n, ho, wo, c});
}

TEST(OpRef, Conv2d) {
  struct Case { int k, stride, padding; };
  for (Case c : {Case{3, 2, 1}, Case{3, 1, 1}, Case{1, 1, 0}, Case{5, 2, 2}, Case{1, 2, 0}}) {
    SCOPED_TRACE(testing::Message() << "k " << c.k << " stride " << c.stride);
    const Tensor x = random({3, 11, 9, 16}, 1, false), w = random({8, c.k, c.k, 16}, 2, false);
    expect_close(ops::conv2d(f32(x), f32(w), c.stride, c.padding),
                 conv2d_naive(x, w, c.stride, c.padding), kTol, kTol, "conv2d");
  }
}

TEST(OpRef, DepthwiseConv) {
  for (int k : {3, 5, 7}) {
    for (int stride : {1, 2}) {
      SCOPED_TRACE(testing::Message() << "k " << k << " stride " << stride);
      // 19 channels: not a multiple of any vector width.
      const Tensor x = random({2, 13, 10, 19}, 3, false), w = random({19, k, k}, 4, false);
      expect_close(ops::depthwise_conv2d(f32(x), f32(w), stride, k / 2),
                   depthwise_naive(x, w, stride, k / 2), kTol, kTol, "depthwise");
    }
  }
}

TEST(OpRef, PointwiseConv) {
  const Tensor x = random({2, 5, 7, 12}, 5, false), w = random({9, 1, 1, 12}, 6, false);
  expect_close(ops::pointwise_conv(f32(x), f32(w)), conv2d_naive(x, w, 1, 0), kTol, kTol,
               "pointwise");
}

TEST(OpRef, MatmulAndLinear) {
  const Tensor a = random({7, 5}, 7, false), b = random({5, 3}, 8, false), bias = random({3}, 9, false);
  std::vector<double> y(21, 0.0);
  const double* pa = a.data<double>();
  const double* pb = b.data<double>();
  for (int i = 0; i < 7; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 5; ++k) y[static_cast<size_t>(i * 3 + j)] += pa[i * 5 + k] * pb[k * 3 + j];
  const Tensor expected = Tensor::from_vector(y, Shape{7, 3});
  expect_close(ops::matmul(f32(a), f32(b)), expected, kTol, kTol, "matmul");
  // linear uses weight [out, in]: the transpose of b.
  std::vector<double> wt(15);
  for (int k = 0; k < 5; ++k)
    for (int j = 0; j < 3; ++j) wt[static_cast<size_t>(j * 5 + k)] = pb[k * 3 + j];
  const Tensor w = Tensor::from_vector(wt, Shape{3, 5});
  expect_close(ops::linear(f32(a), f32(w), f32(bias)), ops::add(expected, bias), kTol, kTol, "linear");
}

TEST(OpRef, MaxPool) {
  for (int k : {3, 5, 7}) {
    for (int stride : {1, 2}) {
      SCOPED_TRACE(testing::Message() << "k " << k << " stride " << stride);
      const Tensor x = random({2, 11, 9, 19}, 10, false);
      expect_close(ops::max_pool2d(f32(x), k, stride, k / 2), pool_naive(x, k, stride, k / 2, true),
                   kTol, kTol, "max_pool2d");
    }
  }
}

TEST(OpRef, AvgPool) {
  for (int k : {3, 5, 7}) {
    for (int stride : {1, 2}) {
      SCOPED_TRACE(testing::Message() << "k " << k << " stride " << stride);
      const Tensor x = random({2, 11, 9, 19}, 11, false);
      expect_close(ops::avg_pool2d(f32(x), k, stride, k / 2), pool_naive(x, k, stride, k / 2, false),
                   kTol, kTol, "avg_pool2d");
    }
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
  expect_close(y, Tensor::from_vector(expected, x.shape()), 2e-5, kTol, "batch_norm");
  std::vector<double> rm_expected(c), rv_expected(c);
  for (int64_t j = 0; j < c; ++j) {
    rm_expected[j] = 0.9 * 0.5 + 0.1 * mean[j];
    rv_expected[j] = 0.9 * 2.0 + 0.1 * var[j] * rows / (rows - 1);
  }
  expect_close(rm, Tensor::from_vector(rm_expected, Shape{c}), kTol, kTol, "running_mean");
  expect_close(rv, Tensor::from_vector(rv_expected, Shape{c}), kTol, kTol, "running_var");
}

// The fused activations are the same arithmetic as the two ops in a row, bit for bit.
TEST(OpRef, BatchNormFusedActivationsEqualSeparate) {
  const Tensor x = f32(random({2, 5, 4, 7}, 20, false, 3.0));
  const Tensor gamma = f32(random({7}, 21, false, 3.0)), beta = f32(random({7}, 22, false, 2.0));
  const Tensor g = f32(random({2, 5, 4, 7}, 23, false));
  for (const auto act : {ops::BnActivation::kReLU6, ops::BnActivation::kHardswish}) {
    const bool relu6 = act == ops::BnActivation::kReLU6;
    SCOPED_TRACE(relu6 ? "relu6" : "hardswish");
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
        y = relu6 ? ops::relu6(z) : ops::hardswish(z);
      }
      y.backward(g);
      outputs[fused] = y.to_vector<float>();
      grads[fused] = {xi.grad(), gi.grad(), bi.grad()};
    }
    EXPECT_EQ(outputs[0], outputs[1]);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(grads[0][i].to_vector<float>(), grads[1][i].to_vector<float>());
    int saturated = 0;  // ReLU6: both edges of the clamp; hardswish: its zero below -3
    for (float v : outputs[1]) saturated += v == 0.0f || (relu6 && v == 6.0f);
    EXPECT_GT(saturated, 10) << "the input should reach the activation's flat parts";
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
  expect_close(ops::channel_affine(x, Tensor(), shift, A::kReLU6), ops::relu6(ops::add(x, shift)), 0, 0, "bias relu6");
  EXPECT_THROW(ops::channel_affine(x, Tensor(), f32(random({6}, 27, false))), Error);
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
               Tensor::full(Shape{}, total / 4.0, DType::kF64), kTol, kTol, "cross_entropy");
}

TEST(OpRef, StripAndGlobalPool) {
  const Tensor x = random({2, 3, 4, 5}, 16, false);
  const double* px = x.data<double>();
  std::vector<double> strip(2 * 7 * 5, 0.0), global(2 * 5, 0.0);
  for (int b = 0; b < 2; ++b)
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 4; ++j)
        for (int c = 0; c < 5; ++c) {
          const double v = px[((b * 3 + i) * 4 + j) * 5 + c];
          strip[static_cast<size_t>((b * 7 + i) * 5 + c)] += v / 4.0;
          strip[static_cast<size_t>((b * 7 + 3 + j) * 5 + c)] += v / 3.0;
          global[static_cast<size_t>(b * 5 + c)] += v / 12.0;
        }
  expect_close(ops::strip_pool(f32(x)), Tensor::from_vector(strip, Shape{2, 7, 5}), kTol, kTol,
               "strip_pool");
  expect_close(ops::global_avg_pool(f32(x)), Tensor::from_vector(global, Shape{2, 5}), kTol, kTol,
               "global_avg_pool");
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

// Every op's f32 backward against its f64 backward on the same inputs: the gradient checks run
// in f64 only, so this is what covers the f32 instantiations of the backward code.
TEST(OpRef, F32BackwardMatchesF64) {
  using Fn = std::function<Tensor(const Tensors&)>;
  const Tensor labels = Tensor::from_vector<int64_t>({1, 0, 4}, Shape{3});
  const std::vector<std::pair<const char*, std::pair<Fn, std::vector<Shape>>>> cases = {
      {"conv2d", {[](const Tensors& t) { return ops::conv2d(t[0], t[1], 2, 1); }, {{2, 7, 6, 3}, {4, 3, 3, 3}}}},
      {"depthwise", {[](const Tensors& t) { return ops::depthwise_conv2d(t[0], t[1], 2, 2); }, {{2, 9, 8, 5}, {5, 5, 5}}}},
      {"linear", {[](const Tensors& t) { return ops::linear(t[0], t[1], t[2]); }, {{3, 4}, {5, 4}, {5}}}},
      {"batch_norm", {[](const Tensors& t) { return ops::batch_norm(t[0], t[1], t[2], Tensor(), Tensor(), true); }, {{2, 3, 4, 5}, {5}, {5}}}},
      {"max_pool", {[](const Tensors& t) { return ops::max_pool2d(t[0], 5, 1, 2); }, {{2, 6, 7, 3}}}},
      {"avg_pool", {[](const Tensors& t) { return ops::avg_pool2d(t[0], 7, 1, 3); }, {{2, 6, 7, 3}}}},
      {"strip_pool", {[](const Tensors& t) { return ops::strip_pool(t[0]); }, {{2, 3, 4, 5}}}},
      {"cross_entropy", {[&](const Tensors& t) { return ops::cross_entropy(t[0], labels, 0.1); }, {{3, 5}}}},
      {"hardswish*sigmoid", {[](const Tensors& t) { return ops::mul(ops::hardswish(t[0]), ops::sigmoid(t[1])); }, {{4, 5}, {5}}}},
      {"softmax", {[](const Tensors& t) { return ops::softmax(t[0]); }, {{3, 6}}}},
      {"channel_affine", {[](const Tensors& t) { return ops::channel_affine(t[0], t[1], t[2], ops::ChannelActivation::kHardswish); }, {{2, 3, 4, 5}, {5}, {5}}}},
  };
  for (const auto& [name, spec] : cases) {
    SCOPED_TRACE(name);
    const auto& [fn, shapes] = spec;
    Tensors in64, in32;
    for (size_t i = 0; i < shapes.size(); ++i) {
      in64.push_back(random(shapes[i], 100 + i, true, 2.0));
      in32.push_back(f32(in64.back()).set_requires_grad(true));
    }
    const Tensor y64 = fn(in64), y32 = fn(in32);
    const Tensor g = random(y64.shape(), 7, false);
    y64.backward(g);
    y32.backward(f32(g));
    expect_close(y32, y64, kTol, kTol, "output");
    for (size_t i = 0; i < in64.size(); ++i) {
      expect_close(in32[i].grad(), in64[i].grad(), 1e-4, 1e-4, "gradient");
    }
  }
}

}  // namespace
}  // namespace pmpl
