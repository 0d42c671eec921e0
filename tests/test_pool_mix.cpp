// The fused Meta-Pooling mixture (ops::meta_pool_mix): equal to the separate ops in forward bit
// for bit (ties and NaNs included), a finite-difference gradient, and the per-element kernel
// functions the CUDA kernels run (engine/kernels/pool_mix.h), emulated here over every element,
// equal to the CPU op bit for bit.
#include <cmath>

#include "engine/kernels/pool_mix.h"
#include "layers/meta_pooling.h"
#include "tests/test_util.h"

namespace pmpl {
namespace {

using test::expect_close;
using test::expect_gradients_match;
using test::random;

Tensor f32(const Tensor& t) { return t.to(DType::kF32).set_requires_grad(t.requires_grad()); }

// Values on a coarse grid: many ties inside every window, so "first maximum wins" is exercised.
Tensor coarse(const Shape& shape, uint64_t seed) {
  const Tensor r = random(shape, seed, false, 2.0, DType::kF32);
  std::vector<float> v = r.to_vector<float>();
  for (float& e : v) e = std::round(e * 2.0f) / 2.0f;
  return Tensor::from_vector(v, shape);
}

Tensor mixture_of_separate_ops(const Tensor& x, const Tensor& strip, const Tensor& w) {
  Tensors branches;
  for (int i = 0; i < kNumPoolOps; ++i) {
    const auto op = static_cast<PoolOp>(i);
    branches.push_back(op == PoolOp::kStrip ? strip : run_pool_op(op, x, nullptr));
  }
  return ops::weighted_sum(branches, w);
}

const std::vector<Shape> kShapes = {{2, 9, 11, 13}, {1, 2, 3, 5}, {3, 7, 7, 8}, {1, 1, 1, 3}, {2, 12, 5, 33}};

TEST(PoolMix, ForwardEqualsTheSeparateOpsBitForBit) {
  for (const Shape& shape : kShapes) {
    SCOPED_TRACE(shape.str());
    Tensor x = coarse(shape, 1);
    if (shape == Shape{2, 9, 11, 13}) x.data<float>()[100] = std::nanf("");  // a NaN wins its windows
    const Tensor strip = random(shape, 2, false, 1.0, DType::kF32);
    const Tensor w = ops::softmax(random({8}, 3, false, 1.0, DType::kF32));
    const std::vector<float> fused = ops::meta_pool_mix(x, strip, w).to_vector<float>();
    const std::vector<float> separate = mixture_of_separate_ops(x, strip, w).to_vector<float>();
    ASSERT_EQ(fused.size(), separate.size());
    for (size_t i = 0; i < fused.size(); ++i) {
      if (std::isnan(separate[i])) ASSERT_TRUE(std::isnan(fused[i])) << i;
      else ASSERT_EQ(fused[i], separate[i]) << i;
    }
  }
}

TEST(PoolMix, BackwardAgreesWithTheSeparateOps) {
  for (const Shape& shape : kShapes) {
    SCOPED_TRACE(shape.str());
    const Tensor x0 = coarse(shape, 4), s0 = random(shape, 5, false, 1.0, DType::kF32);
    const Tensor w0 = ops::softmax(random({8}, 6, false, 1.0, DType::kF32));
    const Tensor dy = random(shape, 7, false, 1.0, DType::kF32);
    Tensors grads[2];
    for (int fused = 0; fused < 2; ++fused) {
      Tensor x = x0.clone().set_requires_grad(true), s = s0.clone().set_requires_grad(true);
      Tensor w = w0.clone().set_requires_grad(true);
      const Tensor y = fused ? ops::meta_pool_mix(x, s, w) : mixture_of_separate_ops(x, s, w);
      y.backward(dy);
      grads[fused] = {x.grad(), s.grad(), w.grad()};
    }
    // float32 sums in another order: a few ulps of the largest terms.
    expect_close(grads[1][0], grads[0][0], 1e-6, 1e-5, "dx");
    expect_close(grads[1][1], grads[0][1], 0, 0, "dstrip");
    expect_close(grads[1][2], grads[0][2], 1e-6, 1e-6, "dw");
  }
}

TEST(PoolMix, GradientMatchesFiniteDifferences) {
  expect_gradients_match([](const Tensors& t) { return ops::meta_pool_mix(t[0], t[1], t[2]); },
                         {random({2, 5, 6, 3}, 8), random({2, 5, 6, 3}, 9), random({8}, 10)});
  expect_gradients_match([](const Tensors& t) { return ops::meta_pool_mix(t[0], t[1], t[2]); },
                         {random({1, 9, 8, 2}, 11), random({1, 9, 8, 2}, 12), random({8}, 13)});
}

// What the CUDA kernels compute per element, emulated over every element, equals the CPU op bit
// for bit: the forward value from the row and column stages, and through pass 1's winner bytes
// and the row gradients, the input gradient (the kernels read the same values from shared-memory
// tiles instead of global memory).
TEST(PoolMix, KernelFunctionsEqualTheOpOnEveryElement) {
  for (const Shape& shape : kShapes) {
    SCOPED_TRACE(shape.str());
    const Tensor x = coarse(shape, 14).set_requires_grad(true);
    const Tensor strip = random(shape, 15, false, 1.0, DType::kF32);
    const Tensor w = ops::softmax(random({8}, 16, false, 1.0, DType::kF32));
    const Tensor dy = random(shape, 17, false, 1.0, DType::kF32);
    const Tensor y = ops::meta_pool_mix(x, strip, w);
    y.backward(dy);
    const kernels::PoolMixShape s{shape[0], shape[1], shape[2], shape[3]};
    const float *px = x.data<float>(), *pw = w.data<float>(), *pd = dy.data<float>();
    auto at = [&](int64_t n, int64_t h, int64_t ww, int64_t c) { return ((n * s.h + h) * s.w + ww) * s.c + c; };
    const auto count = static_cast<size_t>(x.numel());
    std::vector<uint8_t> rows_won(count), cols_won(count);
    std::vector<float> ky(count), kdx(count);
    for (int64_t n = 0; n < s.n; ++n)
      for (int64_t h = 0; h < s.h; ++h)
        for (int64_t ww = 0; ww < s.w; ++ww)
          for (int64_t c = 0; c < s.c; ++c) {
            int clo, chi, rlo, rhi;
            kernels::pool_mix_span(ww, s.w, clo, chi);
            kernels::pool_mix_span(h, s.h, rlo, rhi);
            kernels::PoolMixRow<float> rows[7] = {};
            for (int d = rlo; d <= rhi; ++d) {
              rows[d + 3] = kernels::pool_mix_row<float>([&](int e) { return px[at(n, h + d, ww + e, c)]; }, clo, chi);
            }
            const auto b = kernels::pool_mix_column(rows, rlo, rhi);
            const auto o = static_cast<size_t>(at(n, h, ww, c));
            ky[o] = kernels::pool_mix_value(px[o], strip.data<float>()[o], b, pw);
            rows_won[o] = kernels::pool_mix_pack(b.row);
            cols_won[o] = kernels::pool_mix_pack(rows[3].at);
          }
    for (int64_t n = 0; n < s.n; ++n)
      for (int64_t h = 0; h < s.h; ++h)
        for (int64_t ww = 0; ww < s.w; ++ww)
          for (int64_t c = 0; c < s.c; ++c) {
            int clo, chi, rlo, rhi;
            kernels::pool_mix_span(ww, s.w, clo, chi);
            kernels::pool_mix_span(h, s.h, rlo, rhi);
            auto row_grad = [&](int e) {
              return kernels::pool_mix_row_grad<float>([&](int f) { return pd[at(n, h + f, ww + e, c)]; },
                                                       [&](int f) { return rows_won[at(n, h + f, ww + e, c)]; },
                                                       rlo, rhi, pw);
            };
            const float g = kernels::pool_mix_input_grad<float>(
                row_grad, [&](int e) { return cols_won[at(n, h, ww + e, c)]; }, clo, chi);
            const auto i = static_cast<size_t>(at(n, h, ww, c));
            kdx[i] = g + pw[0] * pd[i];
          }
    EXPECT_EQ(ky, y.to_vector<float>());
    EXPECT_EQ(kdx, x.grad().to_vector<float>());
  }
}

}  // namespace
}  // namespace pmpl
