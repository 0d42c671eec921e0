// Convolutions and matrix products (engine/ops/conv2d.cpp, depthwise_conv.cpp, matmul.cpp):
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

TEST(OpRef, Conv2d) {
  struct Case { int k, stride, padding; };
  for (Case c : {Case{3, 2, 1}, Case{3, 1, 1}, Case{1, 1, 0}, Case{5, 2, 2}, Case{1, 2, 0}}) {
    SCOPED_TRACE(testing::Message() << "k " << c.k << " stride " << c.stride);
    const Tensor x = random({3, 11, 9, 16}, 1, false), w = random({8, c.k, c.k, 16}, 2, false);
    expect_close(ops::conv2d(f32(x), f32(w), c.stride, c.padding),
                 conv2d_naive(x, w, c.stride, c.padding), test::kRefTol, test::kRefTol, "conv2d");
  }
}

TEST(OpRef, DepthwiseConv) {
  for (int k : {3, 5, 7}) {
    for (int stride : {1, 2}) {
      SCOPED_TRACE(testing::Message() << "k " << k << " stride " << stride);
      // 19 channels: not a multiple of any vector width.
      const Tensor x = random({2, 13, 10, 19}, 3, false), w = random({19, k, k}, 4, false);
      expect_close(ops::depthwise_conv2d(f32(x), f32(w), stride, k / 2),
                   depthwise_naive(x, w, stride, k / 2), test::kRefTol, test::kRefTol, "depthwise");
    }
  }
}

TEST(OpRef, PointwiseConv) {
  const Tensor x = random({2, 5, 7, 12}, 5, false), w = random({9, 1, 1, 12}, 6, false);
  expect_close(ops::pointwise_conv(f32(x), f32(w)), conv2d_naive(x, w, 1, 0), test::kRefTol, test::kRefTol,
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
  expect_close(ops::matmul(f32(a), f32(b)), expected, test::kRefTol, test::kRefTol, "matmul");
  // linear uses weight [out, in]: the transpose of b.
  std::vector<double> wt(15);
  for (int k = 0; k < 5; ++k)
    for (int j = 0; j < 3; ++j) wt[static_cast<size_t>(j * 5 + k)] = pb[k * 3 + j];
  const Tensor w = Tensor::from_vector(wt, Shape{3, 5});
  expect_close(ops::linear(f32(a), f32(w), f32(bias)), ops::add(expected, bias), test::kRefTol, test::kRefTol, "linear");
}

TEST(OpTorch, Convolutions) {
  test::check_torch_case("conv2d_k3_s2", {"x", "weight"},
             [](const Tensors& t) { return ops::conv2d(t[0], t[1], 2, 1); });
  test::check_torch_case("depthwise_k5_s2", {"x", "weight"},
             [](const Tensors& t) { return ops::depthwise_conv2d(t[0], t[1], 2, 2); });
}

}  // namespace
}  // namespace pmpl
