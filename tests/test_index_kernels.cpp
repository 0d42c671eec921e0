// The index arithmetic of the simpler CUDA kernels (core/kernels/indexing.h), run on the CPU
// over every element and compared with the CPU ops: broadcasting, sum_to, im2col/col2im (through
// a plain matrix product, against ops::conv2d) and strip pooling. The GPU runs these same
// functions one thread per element; what it adds (launches, races) is CudaOps.*'s.
#include <cmath>

#include "core/kernels/indexing.h"
#include "engine/ops/op_util.h"
#include "tests/test_util.h"

namespace pmpl {
namespace {

Tensor f32(const Shape& shape, uint64_t seed) { return test::random(shape, seed, false, 1.0, DType::kF32); }

TEST(IndexKernels, BroadcastOffsetsEqualTheCpuOp) {
  const std::vector<std::pair<Shape, Shape>> shapes = {{{2, 5, 7, 6}, {2, 1, 7, 6}}, {{2, 5, 7, 6}, {6}},
                                                       {{2, 5, 1, 1}, {1, 1, 7, 6}}, {{3, 1, 4}, {2, 1, 1, 4}},
                                                       {{1, 2, 3, 4, 5}, {5}}};
  for (const auto& [sa, sb] : shapes) {
    SCOPED_TRACE(sa.str() + " " + sb.str());
    const Tensor a = f32(sa, 1), b = f32(sb, 2);
    const Tensor y = ops::mul(a, b);
    const kernels::Broadcast5 p = ops::detail::broadcast5("mul", sa, sb);
    const std::vector<float> pa = a.to_vector<float>(), pb = b.to_vector<float>();
    std::vector<float> ky;
    for (int64_t i = 0; i < y.numel(); ++i) {
      int64_t ao, bo;
      kernels::broadcast_offsets(i, p, ao, bo);
      ky.push_back(pa[static_cast<size_t>(ao)] * pb[static_cast<size_t>(bo)]);
    }
    EXPECT_EQ(ky, y.to_vector<float>());
  }
}

TEST(IndexKernels, SumToEqualsTheCpuOp) {
  const std::vector<std::pair<Shape, Shape>> shapes = {{{2, 5, 7, 6}, {2, 1, 7, 6}}, {{2, 5, 7, 6}, {1, 1, 1, 6}},
                                                       {{2, 5, 7, 6}, {2, 5, 1, 1}}, {{3, 4, 5}, {1, 4, 1}}};
  for (const auto& [in, out] : shapes) {
    SCOPED_TRACE(in.str() + " -> " + out.str());
    const Tensor x = f32(in, 3);
    const Tensor y = ops::sum_to_shape(x, out);
    kernels::Dims5 d{};
    for (int a = 0; a < 5; ++a) {
      const int i = in.rank() - 5 + a, o = out.rank() - 5 + a;
      d.in[a] = i >= 0 ? in[i] : 1;
      d.out[a] = o >= 0 ? out[o] : 1;
    }
    const std::vector<float> px = x.to_vector<float>();
    std::vector<float> ky;
    for (int64_t o = 0; o < y.numel(); ++o) ky.push_back(static_cast<float>(kernels::sum_to_value(px.data(), d, o)));
    // Double sums in another order than the CPU op's, rounded once to float.
    test::expect_close(Tensor::from_vector(ky, y.shape()), y, 1e-6, 1e-6, "sum_to");
  }
}

TEST(IndexKernels, Im2colAndCol2imMakeTheCpuConvolution) {
  struct Case {
    Shape x, w;
    int stride, padding;
  };
  for (const Case& c : std::vector<Case>{{{2, 17, 15, 3}, {8, 3, 3, 3}, 2, 1},
                                         {{2, 9, 9, 5}, {6, 5, 5, 5}, 1, 2},
                                         {{1, 6, 7, 4}, {3, 3, 3, 4}, 2, 0}}) {
    SCOPED_TRACE(c.x.str() + " " + c.w.str());
    Tensor x = f32(c.x, 4).set_requires_grad(true);
    const Tensor w = f32(c.w, 5);
    const Tensor y = ops::conv2d(x, w, c.stride, c.padding);
    const Tensor gy = f32(y.shape(), 6);
    y.backward(gy);
    const kernels::ConvShape g{c.x[1], c.x[2], c.x[3], c.w[1], c.w[2], y.dim(1), y.dim(2), c.stride, c.padding};
    const int64_t k = g.kh * g.kw * g.cin, pixels = c.x[0] * g.ho * g.wo, cout = c.w[0];
    const std::vector<float> px = x.to_vector<float>(), pw = w.to_vector<float>(), pg = gy.to_vector<float>();
    std::vector<float> cols(static_cast<size_t>(pixels * k));
    for (int64_t e = 0; e < pixels * k; ++e) cols[static_cast<size_t>(e)] = kernels::im2col_value(px.data(), g, e);
    // y = cols W^T and dcols = gy W, in double: only the index arithmetic is under test.
    std::vector<float> ky(static_cast<size_t>(pixels * cout)), dcols(static_cast<size_t>(pixels * k));
    for (int64_t p = 0; p < pixels; ++p) {
      for (int64_t o = 0; o < cout; ++o) {
        double acc = 0.0;
        for (int64_t t = 0; t < k; ++t) acc += static_cast<double>(cols[p * k + t]) * pw[o * k + t];
        ky[static_cast<size_t>(p * cout + o)] = static_cast<float>(acc);
      }
      for (int64_t t = 0; t < k; ++t) {
        double acc = 0.0;
        for (int64_t o = 0; o < cout; ++o) acc += static_cast<double>(pg[p * cout + o]) * pw[o * k + t];
        dcols[static_cast<size_t>(p * k + t)] = static_cast<float>(acc);
      }
    }
    test::expect_close(Tensor::from_vector(ky, y.shape()), y, 1e-5, 1e-5, "y");
    std::vector<float> kdx;
    for (int64_t e = 0; e < x.numel(); ++e) kdx.push_back(kernels::col2im_value(dcols.data(), g, e));
    test::expect_close(Tensor::from_vector(kdx, x.shape()), x.grad(), 1e-5, 1e-5, "dx");
  }
}

TEST(IndexKernels, StripPoolEqualsTheCpuOp) {
  for (const Shape& shape : std::vector<Shape>{{2, 7, 5, 13}, {1, 1, 4, 3}, {3, 6, 1, 2}}) {
    SCOPED_TRACE(shape.str());
    Tensor x = f32(shape, 7).set_requires_grad(true);
    const Tensor y = ops::strip_pool(x);
    const Tensor gy = f32(y.shape(), 8);
    y.backward(gy);
    const int64_t h = shape[1], w = shape[2], c = shape[3];
    const std::vector<float> px = x.to_vector<float>(), pg = gy.to_vector<float>();
    std::vector<float> ky, kdx;
    for (int64_t o = 0; o < y.numel(); ++o) ky.push_back(static_cast<float>(kernels::strip_pool_value(px.data(), h, w, c, o)));
    for (int64_t e = 0; e < x.numel(); ++e) kdx.push_back(kernels::strip_pool_grad(pg.data(), h, w, c, e));
    EXPECT_EQ(ky, y.to_vector<float>());
    EXPECT_EQ(kdx, x.grad().to_vector<float>());
  }
}

}  // namespace
}  // namespace pmpl
