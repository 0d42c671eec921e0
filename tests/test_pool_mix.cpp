// The fused Meta-Pooling mixture (ops::meta_pool_mix): equal to the separate ops in forward bit
// for bit (ties and NaNs included), a finite-difference gradient, and the per-element kernel
// functions the CUDA kernels run (engine/kernels/pool_mix.h), emulated here over every element,
// equal to the CPU op bit for bit.
#include <cmath>

#include <algorithm>
#include <memory>
#include <type_traits>

#include "engine/kernels/pool_mix.h"
#include "engine/kernels/pool_mix_tiles.h"
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

// The CUDA kernels of the mixture emulated block by block and thread by thread from their
// host-device parts (engine/kernels/pool_mix_tiles.h): each barrier of cuda_kernels/pool_mix.cu
// ends a phase here that every thread of the block finishes first. Threads run in ascending or
// descending order: a thread reading shared memory another writes in the same phase would make the
// two orders disagree.
struct EmulatedMix {
  std::vector<float> y, dx, dstrip, dw;
};

EmulatedMix emulate_kernels(const Tensor& x, const Tensor& strip, const Tensor& w, const Tensor& dy, bool descending) {
  const kernels::PoolMixShape s{x.dim(0), x.dim(1), x.dim(2), x.dim(3)};
  const auto count = static_cast<size_t>(x.numel());
  const float *px = x.data<float>(), *ps = strip.data<float>(), *pw = w.data<float>(), *pd = dy.data<float>();
  EmulatedMix out{std::vector<float>(count, NAN), std::vector<float>(count, NAN), std::vector<float>(count, NAN),
                  std::vector<float>(8, 0.0f)};
  std::vector<uint16_t> winners(count, 0xffff);
  auto each_thread = [&](auto&& f) {
    for (int i = 0; i < kernels::kMixThreads; ++i) f(descending ? kernels::kMixThreads - 1 - i : i);
  };
  auto each_block = [&](int rows, auto&& f) {
    int64_t gx, gy, gz;
    kernels::mix_grid(s, rows, gx, gy, gz);
    for (int64_t bz = 0; bz < gz; ++bz)
      for (int64_t by = 0; by < gy; ++by)
        for (int64_t bx = 0; bx < gx; ++bx) f(kernels::mix_tile(s, rows, bx, by, bz));
  };
  double dw[8] = {};
  struct ScanShared {
    kernels::MixScanTile tile;
  };
  const auto scan = std::make_unique<ScanShared>();
  // Shared memory is poisoned before every block (and the row gradients before every row): a read
  // of anything the block did not write would show.
  auto poison = [](auto& array) {
    using Element = std::remove_all_extents_t<std::remove_reference_t<decltype(array)>>;
    Element* first = &array[0][0][0];
    if constexpr (std::is_floating_point_v<Element>) std::fill(first, first + sizeof(array) / sizeof(Element), NAN);
    else std::fill(first, first + sizeof(array) / sizeof(Element), static_cast<Element>(~0u));
  };
  each_block(kernels::kMixScanRows, [&](const kernels::MixTile& t) {
    poison(scan->tile);
    each_thread([&](int th) { kernels::mix_load_scan_tile(scan->tile, s, t, th, [&](int64_t i) { return px[i]; }); });
    each_thread([&](int th) {  // forward and pass 1 share the scan
      kernels::mix_scan_column(scan->tile, s, t, th, [&](int64_t o, float skip, const auto& b, const auto& centre) {
        out.y[static_cast<size_t>(o)] = kernels::pool_mix_value(skip, ps[o], b, pw);
        winners[static_cast<size_t>(o)] = kernels::mix_winners(b, centre);
        for (int k = 0; k < 8; ++k) dw[k] += pd[o] * static_cast<double>(kernels::pool_mix_branch(skip, ps[o], b, k));
      });
    });
  });
  for (int k = 0; k < 8; ++k) out.dw[static_cast<size_t>(k)] = static_cast<float>(dw[k]);
  const auto grad = std::make_unique<kernels::MixGradTiles>();
  each_block(kernels::kMixGradRows, [&](const kernels::MixTile& t) {
    poison(grad->grad);
    poison(grad->won);
    each_thread([&](int th) {
      kernels::mix_load_grad_tiles(*grad, s, t, th, [&](int64_t i) { return pd[i]; },
                                   [&](int64_t i) { return winners[static_cast<size_t>(i)]; });
    });
    for (int i = 0; i < kernels::mix_grad_rows(s, t); ++i) {
      poison(grad->row_avg);
      poison(grad->row_max);
      each_thread([&](int th) { kernels::mix_row_grads(*grad, s, t, i, th, pw); });
      each_thread([&](int th) {
        kernels::mix_input_grad(*grad, s, t, i, th, pw, [&](int64_t o, float gx_value, float gstrip) {
          out.dx[static_cast<size_t>(o)] = gx_value;
          out.dstrip[static_cast<size_t>(o)] = gstrip;
        });
      });
    }
  });
  return out;
}

// Tensors smaller than a tile, tile-sized, and spanning several row tiles of both kinds (16 and
// 12 rows), several column tiles and partial channel tiles, with a NaN in x; and an empty batch. y and dx bit for bit
// with the CPU op (outputs poisoned with NaN first: every element written), dstrip = w[1] dy
// exactly, dw summed in another order.
TEST(PoolMixTiles, KernelsEmulatedBlockByBlockEqualTheCpuOp) {
  const std::vector<Shape> shapes = {{2, 9, 11, 13},  {1, 2, 3, 5},     {3, 14, 14, 40}, {1, 1, 1, 3},
                                     {2, 37, 35, 19}, {1, 16, 16, 16}, {1, 25, 33, 32}, {0, 4, 5, 3}};
  for (const Shape& shape : shapes) {
    SCOPED_TRACE(shape.str());
    Tensor x = coarse(shape, 21);
    if (x.numel() > 0) x.data<float>()[x.numel() / 2] = std::nanf("");  // a NaN wins its windows
    x.set_requires_grad(true);
    const Tensor strip = random(shape, 22, false, 1.0, DType::kF32).set_requires_grad(true);
    const Tensor w = ops::softmax(random({8}, 23, false, 1.0, DType::kF32)).set_requires_grad(true);
    const Tensor dy = random(shape, 24, false, 1.0, DType::kF32);
    const Tensor y = ops::meta_pool_mix(x, strip, w);
    y.backward(dy);
    const std::vector<float> cpu_y = y.to_vector<float>(), cpu_dx = x.grad().to_vector<float>();
    for (bool descending : {false, true}) {
      SCOPED_TRACE(descending ? "threads in descending order" : "threads in ascending order");
      const EmulatedMix gpu = emulate_kernels(x, strip, w, dy, descending);
      ASSERT_EQ(gpu.y.size(), cpu_y.size());
      for (size_t i = 0; i < cpu_y.size(); ++i) {
        if (std::isnan(cpu_y[i])) ASSERT_TRUE(std::isnan(gpu.y[i])) << "y " << i;
        else ASSERT_EQ(gpu.y[i], cpu_y[i]) << "y " << i;
        if (std::isnan(cpu_dx[i])) ASSERT_TRUE(std::isnan(gpu.dx[i])) << "dx " << i;
        else ASSERT_EQ(gpu.dx[i], cpu_dx[i]) << "dx " << i;
      }
      EXPECT_EQ(gpu.dstrip, strip.grad().to_vector<float>());
      const std::vector<float> cpu_dw = w.grad().to_vector<float>();
      for (size_t k = 0; k < cpu_dw.size(); ++k) {  // branches holding the NaN have a NaN weight gradient
        if (std::isnan(cpu_dw[k])) EXPECT_TRUE(std::isnan(gpu.dw[k])) << "dw " << k;
        else EXPECT_NEAR(gpu.dw[k], cpu_dw[k], 1e-6 * (1.0 + std::abs(cpu_dw[k]))) << "dw " << k;
      }
    }
  }
}

}  // namespace
}  // namespace pmpl
