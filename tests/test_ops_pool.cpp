// Pools (engine/ops/pooling.cpp, global_pool.cpp; the Meta-Pooling mixture is
// tests/test_pool_mix.cpp): OpGrad.* finite-difference gradients in f64, OpRef.* fast paths
// against plain loops (kRefTol), OpTorch.* against PyTorch (kTorchTol).
// The methods and their tolerances: tests/op_test_util.h.
#include <cmath>
#include <functional>
#include <limits>

#include "tests/op_test_util.h"

namespace pmpl {
namespace {

using test::expect_gradients_match;
using test::expect_close;
using test::f32;
using test::random;

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

TEST(OpRef, MaxPool) {
  for (int k : {3, 5, 7}) {
    for (int stride : {1, 2}) {
      SCOPED_TRACE(testing::Message() << "k " << k << " stride " << stride);
      const Tensor x = random({2, 11, 9, 19}, 10, false);
      expect_close(ops::max_pool2d(f32(x), k, stride, k / 2), pool_naive(x, k, stride, k / 2, true),
                   test::kRefTol, test::kRefTol, "max_pool2d");
    }
  }
}

TEST(OpRef, AvgPool) {
  for (int k : {3, 5, 7}) {
    for (int stride : {1, 2}) {
      SCOPED_TRACE(testing::Message() << "k " << k << " stride " << stride);
      const Tensor x = random({2, 11, 9, 19}, 11, false);
      expect_close(ops::avg_pool2d(f32(x), k, stride, k / 2), pool_naive(x, k, stride, k / 2, false),
                   test::kRefTol, test::kRefTol, "avg_pool2d");
    }
  }
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
  expect_close(ops::strip_pool(f32(x)), Tensor::from_vector(strip, Shape{2, 7, 5}), test::kRefTol, test::kRefTol,
               "strip_pool");
  expect_close(ops::global_avg_pool(f32(x)), Tensor::from_vector(global, Shape{2, 5}), test::kRefTol, test::kRefTol,
               "global_avg_pool");
}

TEST(OpTorch, Pooling) {
  for (int k : {3, 5, 7}) {
    for (int s : {1, 2}) {
      test::check_torch_case(fmt::format("avg_pool_k{}_s{}", k, s), {"x"},
                 [=](const Tensors& t) { return ops::avg_pool2d(t[0], k, s, k / 2); });
      test::check_torch_case(fmt::format("max_pool_k{}_s{}", k, s), {"x"},
                 [=](const Tensors& t) { return ops::max_pool2d(t[0], k, s, k / 2); });
    }
  }
}

TEST(OpTorch, StripPool) {
  test::check_torch_case("strip_pool", {"x"}, [](const Tensors& t) { return ops::strip_pool(t[0]); });
}

}  // namespace
}  // namespace pmpl
