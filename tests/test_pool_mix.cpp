// The fused Meta-Pooling mixture (ops::meta_pool_mix): equal to the separate ops in forward bit
// for bit (ties and NaNs included), a finite-difference gradient, and the per-element kernel
// functions the CUDA kernels run (core/kernels/pool_mix.h), emulated here over every element,
// equal to the CPU op bit for bit.
#include <cmath>

#include <algorithm>
#include <memory>
#include <type_traits>

#include "core/kernels/pool_mix.h"
#include "core/kernels/pool_mix_tiles.h"
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

// The strip attention of x's shape, in (0, 1) as the module's sigmoids give it: {a_h [N, H, 1, C],
// a_w [N, 1, W, C]}.
Tensors attention(const Shape& shape, uint64_t seed, DType dtype = DType::kF32) {
  return {ops::sigmoid(random({shape[0], shape[1], 1, shape[3]}, seed, false, 1.0, dtype)),
          ops::sigmoid(random({shape[0], 1, shape[2], shape[3]}, seed + 1000, false, 1.0, dtype))};
}

// As the search ran before the fused op: the strip module's products and the separate pools.
Tensor mixture_of_separate_ops(const Tensor& x, const Tensor& a_h, const Tensor& a_w, const Tensor& w) {
  Tensors branches;
  for (int i = 0; i < kNumPoolOps; ++i) {
    const auto op = static_cast<PoolOp>(i);
    branches.push_back(op == PoolOp::kStrip ? ops::mul(ops::mul(x, a_w), a_h) : run_pool_op(op, x, nullptr));
  }
  return ops::weighted_sum(branches, w);
}

const std::vector<Shape> kShapes = {{2, 9, 11, 13}, {1, 2, 3, 5}, {3, 7, 7, 8}, {1, 1, 1, 3}, {2, 12, 5, 33}};

TEST(PoolMix, ForwardEqualsTheSeparateOpsBitForBit) {
  for (const Shape& shape : kShapes) {
    SCOPED_TRACE(shape.str());
    Tensor x = coarse(shape, 1);
    if (shape == Shape{2, 9, 11, 13}) x.data<float>()[100] = std::nanf("");  // a NaN wins its windows
    const Tensors a = attention(shape, 2);
    const Tensor w = ops::softmax(random({8}, 3, false, 1.0, DType::kF32));
    const std::vector<float> fused = ops::meta_pool_mix(x, a[0], a[1], w).to_vector<float>();
    const std::vector<float> separate = mixture_of_separate_ops(x, a[0], a[1], w).to_vector<float>();
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
    const Tensor x0 = coarse(shape, 4), w0 = ops::softmax(random({8}, 6, false, 1.0, DType::kF32));
    const Tensors a0 = attention(shape, 5);
    const Tensor dy = random(shape, 7, false, 1.0, DType::kF32);
    Tensors grads[2];
    for (int fused = 0; fused < 2; ++fused) {
      Tensor x = x0.clone().set_requires_grad(true), w = w0.clone().set_requires_grad(true);
      Tensor a_h = a0[0].clone().set_requires_grad(true), a_w = a0[1].clone().set_requires_grad(true);
      const Tensor y = fused ? ops::meta_pool_mix(x, a_h, a_w, w) : mixture_of_separate_ops(x, a_h, a_w, w);
      y.backward(dy);
      grads[fused] = {x.grad(), a_h.grad(), a_w.grad(), w.grad()};
    }
    // float32 sums in another order: a few ulps of the largest terms.
    expect_close(grads[1][0], grads[0][0], 1e-6, 1e-5, "dx");
    expect_close(grads[1][1], grads[0][1], 1e-6, 1e-5, "da_h");
    expect_close(grads[1][2], grads[0][2], 1e-6, 1e-5, "da_w");
    expect_close(grads[1][3], grads[0][3], 1e-6, 1e-6, "dw");
  }
}

TEST(PoolMix, GradientMatchesFiniteDifferences) {
  for (const Shape& shape : std::vector<Shape>{{2, 5, 6, 3}, {1, 9, 8, 2}}) {
    const Tensors a = attention(shape, 8, DType::kF64);
    expect_gradients_match([](const Tensors& t) { return ops::meta_pool_mix(t[0], t[1], t[2], t[3]); },
                           {random(shape, 9), a[0].detach().set_requires_grad(true),
                            a[1].detach().set_requires_grad(true), random({8}, 10)});
  }
}

// What the CUDA kernels compute per element, emulated over every element, equals the CPU op bit
// for bit: the forward value from the row and column stages and the strip product, and through
// pass 1's winner bytes and the row gradients, the input gradient (the kernels read the same values from shared-memory
// tiles instead of global memory).
TEST(PoolMix, KernelFunctionsEqualTheOpOnEveryElement) {
  for (const Shape& shape : kShapes) {
    SCOPED_TRACE(shape.str());
    const Tensor x = coarse(shape, 14).set_requires_grad(true);
    const Tensors a = attention(shape, 15);
    const Tensor w = ops::softmax(random({8}, 16, false, 1.0, DType::kF32));
    const Tensor dy = random(shape, 17, false, 1.0, DType::kF32);
    const Tensor y = ops::meta_pool_mix(x, a[0], a[1], w);
    y.backward(dy);
    const kernels::PoolMixShape s{shape[0], shape[1], shape[2], shape[3]};
    const float *px = x.data<float>(), *pw = w.data<float>(), *pd = dy.data<float>();
    const float *ph = a[0].data<float>(), *pa = a[1].data<float>();
    auto a_h = [&](int64_t n, int64_t h, int64_t c) { return ph[(n * s.h + h) * s.c + c]; };
    auto a_w = [&](int64_t n, int64_t ww, int64_t c) { return pa[(n * s.w + ww) * s.c + c]; };
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
            ky[o] = kernels::pool_mix_value(px[o], kernels::pool_mix_strip(px[o], a_w(n, ww, c), a_h(n, h, c)), b, pw);
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
            const auto strip = kernels::pool_mix_strip_grad(pd[i], pw[1], px[i], a_w(n, ww, c), a_h(n, h, c));
            kdx[i] = kernels::pool_mix_dx(g, pd[i], strip.x, pw);
          }
    EXPECT_EQ(ky, y.to_vector<float>());
    EXPECT_EQ(kdx, x.grad().to_vector<float>());
  }
}

// The CUDA kernels of the mixture emulated block by block and thread by thread from their
// host-device parts (core/kernels/pool_mix_tiles.h): each barrier of cuda_kernels/pool_mix.cu
// ends a phase here that every thread of the block finishes first. Threads run in ascending or
// descending order: a thread reading shared memory another writes in the same phase would make the
// two orders disagree.
struct EmulatedMix {
  std::vector<float> y, dx, da_h, da_w, dw;
};

EmulatedMix emulate_kernels(const Tensor& x, const Tensor& a_h, const Tensor& a_w, const Tensor& w, const Tensor& dy,
                            bool descending) {
  const kernels::PoolMixShape s{x.dim(0), x.dim(1), x.dim(2), x.dim(3)};
  const auto count = static_cast<size_t>(x.numel());
  const float *px = x.data<float>(), *pw = w.data<float>(), *pd = dy.data<float>();
  const float *ph = a_h.data<float>(), *pa = a_w.data<float>();
  EmulatedMix out{std::vector<float>(count, NAN), std::vector<float>(count, NAN),
                  std::vector<float>(static_cast<size_t>(a_h.numel()), NAN),
                  std::vector<float>(static_cast<size_t>(a_w.numel()), NAN), std::vector<float>(8, 0.0f)};
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
  // Shared memory is poisoned before every block (and the per-row parts before every row): a read
  // of anything the block did not write would show.
  auto poison = [](auto& array) {
    using Element = std::remove_all_extents_t<std::remove_reference_t<decltype(array)>>;
    Element* first = reinterpret_cast<Element*>(&array);
    if constexpr (std::is_floating_point_v<Element>) std::fill(first, first + sizeof(array) / sizeof(Element), NAN);
    else std::fill(first, first + sizeof(array) / sizeof(Element), static_cast<Element>(~0u));
  };
  auto strip_of = [&](const kernels::MixPixel& p, float skip) {
    return kernels::pool_mix_strip(skip, pa[p.attention_w], ph[p.attention_h]);
  };
  each_block(kernels::kMixScanRows, [&](const kernels::MixTile& t) {
    poison(scan->tile);
    each_thread([&](int th) { kernels::mix_load_scan_tile(scan->tile, s, t, th, [&](int64_t i) { return px[i]; }); });
    each_thread([&](int th) {  // forward and pass 1 share the scan
      kernels::mix_scan_column(scan->tile, s, t, th, [&](const kernels::MixPixel& p, float skip, const auto& b,
                                                         const auto& centre) {
        const auto o = static_cast<size_t>(p.o);
        const float strip = strip_of(p, skip);
        out.y[o] = kernels::pool_mix_value(skip, strip, b, pw);
        winners[o] = kernels::mix_winners(b, centre);
        for (int k = 0; k < 8; ++k) dw[k] += pd[o] * static_cast<double>(kernels::pool_mix_branch(skip, strip, b, k));
      });
    });
  });
  for (int k = 0; k < 8; ++k) out.dw[static_cast<size_t>(k)] = static_cast<float>(dw[k]);
  const kernels::MixStripPartials parts = kernels::mix_strip_partials(s);
  std::vector<double> a_h_partials(static_cast<size_t>(parts.a_h_count(s)), NAN),
      a_w_partials(static_cast<size_t>(parts.a_w_count(s)), NAN);
  const auto grad = std::make_unique<kernels::MixGradTiles>();
  auto load = [](const float* p) { return [p](int64_t i) { return p[i]; }; };
  each_block(kernels::kMixGradRows, [&](const kernels::MixTile& t) {
    poison(grad->grad);
    poison(grad->won);
    std::vector<double> a_w_sum(kernels::kMixThreads, 0.0);  // each thread's register
    each_thread([&](int th) {
      kernels::mix_load_grad_tiles(*grad, s, t, th, load(pd), [&](int64_t i) { return winners[static_cast<size_t>(i)]; });
    });
    for (int i = 0; i < kernels::mix_grad_rows(s, t); ++i) {
      poison(grad->row_avg);
      poison(grad->row_max);
      poison(grad->a_h_terms);
      each_thread([&](int th) { kernels::mix_row_grads(*grad, s, t, i, th, pw); });
      each_thread([&](int th) {
        kernels::mix_input_grad(*grad, s, t, i, th, pw, load(px), load(ph), load(pa),
                                a_w_sum[static_cast<size_t>(th)],
                                [&](int64_t o, float gx) { out.dx[static_cast<size_t>(o)] = gx; });
      });
      each_thread([&](int th) {
        kernels::mix_row_a_h(*grad, s, t, i, th,
                             [&](int64_t index, double sum) { a_h_partials[static_cast<size_t>(index)] = sum; });
      });
    }
    each_thread([&](int th) {
      kernels::mix_column_a_w(s, t, th, a_w_sum[static_cast<size_t>(th)],
                              [&](int64_t index, double sum) { a_w_partials[static_cast<size_t>(index)] = sum; });
    });
  });
  // The reduction kernel: the tiles added in order.
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t c = 0; c < s.c; ++c) {
      for (int64_t h = 0; h < s.h; ++h) {
        double sum = 0.0;
        for (int64_t tile = 0; tile < parts.column_tiles; ++tile) {
          sum += a_h_partials[static_cast<size_t>(parts.a_h_index(s, n, h, tile, c))];
        }
        out.da_h[static_cast<size_t>((n * s.h + h) * s.c + c)] = static_cast<float>(sum);
      }
      for (int64_t ww = 0; ww < s.w; ++ww) {
        double sum = 0.0;
        for (int64_t tile = 0; tile < parts.row_tiles; ++tile) {
          sum += a_w_partials[static_cast<size_t>(parts.a_w_index(s, n, tile, ww, c))];
        }
        out.da_w[static_cast<size_t>((n * s.w + ww) * s.c + c)] = static_cast<float>(sum);
      }
    }
  return out;
}

// Values equal, NaN where the reference has NaN; `tolerance` relative (0: bit for bit).
void expect_matches(const std::vector<float>& got, const std::vector<float>& want, double tolerance,
                    const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < want.size(); ++i) {
    if (std::isnan(want[i])) ASSERT_TRUE(std::isnan(got[i])) << what << " " << i;
    else ASSERT_NEAR(got[i], want[i], tolerance * (1.0 + std::abs(want[i]))) << what << " " << i;
  }
}

// Tensors smaller than a tile, tile-sized, and spanning several row tiles of both kinds (16 and
// 12 rows), several column tiles and partial channel tiles, with a NaN in x; and an empty batch.
// y and dx bit for bit with the CPU op (outputs and partial sums poisoned with NaN first: every
// one written); the strip attention's and the weights' gradients, summed in another order, to
// 1e-6.
TEST(PoolMixTiles, KernelsEmulatedBlockByBlockEqualTheCpuOp) {
  const std::vector<Shape> shapes = {{2, 9, 11, 13},  {1, 2, 3, 5},     {3, 14, 14, 40}, {1, 1, 1, 3},
                                     {2, 37, 35, 19}, {1, 16, 16, 16}, {1, 25, 33, 32}, {0, 4, 5, 3}};
  for (const Shape& shape : shapes) {
    SCOPED_TRACE(shape.str());
    Tensor x = coarse(shape, 21);
    if (x.numel() > 0) x.data<float>()[x.numel() / 2] = std::nanf("");  // a NaN wins its windows
    x.set_requires_grad(true);
    const Tensors a = attention(shape, 22);
    const Tensor a_h = a[0].detach().set_requires_grad(true), a_w = a[1].detach().set_requires_grad(true);
    const Tensor w = ops::softmax(random({8}, 23, false, 1.0, DType::kF32)).set_requires_grad(true);
    const Tensor dy = random(shape, 24, false, 1.0, DType::kF32);
    const Tensor y = ops::meta_pool_mix(x, a_h, a_w, w);
    y.backward(dy);
    for (bool descending : {false, true}) {
      SCOPED_TRACE(descending ? "threads in descending order" : "threads in ascending order");
      const EmulatedMix gpu = emulate_kernels(x, a_h, a_w, w, dy, descending);
      expect_matches(gpu.y, y.to_vector<float>(), 0, "y");
      expect_matches(gpu.dx, x.grad().to_vector<float>(), 0, "dx");
      expect_matches(gpu.da_h, a_h.grad().to_vector<float>(), 1e-6, "da_h");
      expect_matches(gpu.da_w, a_w.grad().to_vector<float>(), 1e-6, "da_w");
      expect_matches(gpu.dw, w.grad().to_vector<float>(), 1e-6, "dw");
    }
  }
}

}  // namespace
}  // namespace pmpl
