// The pooling kernels' per-element functions (core/kernels/pool.h), emulated on every element
// on the CPU, equal the CPU op bit for bit: forward values and max taps (ties: the first wins; a
// NaN wins), and the input gradients gathered in the op's order. What a GPU adds beyond this
// (launch configuration, races) is CudaOps.MaxAndAvgPools's.
#include <cmath>
#include <cstring>

#include "core/kernels/pool.h"
#include "tests/test_util.h"

namespace pmpl {
namespace {

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(PoolKernels, EqualTheCpuOpOnEveryElement) {
  struct Case {
    int k, stride, padding;
  };
  for (const Case& pc : std::vector<Case>{{3, 1, 1}, {5, 1, 2}, {7, 1, 3}, {3, 2, 1}, {2, 2, 0}, {3, 2, 0}}) {
    for (const Shape& shape : std::vector<Shape>{{2, 9, 11, 5}, {1, 4, 3, 3}}) {
      for (bool is_max : {true, false}) {
        SCOPED_TRACE(testing::Message() << (is_max ? "max" : "avg") << " k " << pc.k << " stride " << pc.stride
                                        << " padding " << pc.padding << " " << shape.str());
        // Coarse values: ties in every window; one NaN.
        std::vector<float> v = test::random(shape, 1, false, 2.0, DType::kF32).to_vector<float>();
        for (float& e : v) e = std::round(e);
        v[7] = NAN;
        Tensor x = Tensor::from_vector(v, shape).set_requires_grad(true);
        const Tensor y = is_max ? ops::max_pool2d(x, pc.k, pc.stride, pc.padding)
                                : ops::avg_pool2d(x, pc.k, pc.stride, pc.padding);
        const Tensor dy = test::random(y.shape(), 2, false, 1.0, DType::kF32);
        y.backward(dy);
        const kernels::PoolGeometry g{shape[0], shape[1], shape[2], shape[3], y.dim(1), y.dim(2),
                                      pc.k,     pc.stride, pc.padding};
        std::vector<float> ky;
        std::vector<uint8_t> taps;
        for (int64_t n = 0; n < g.n; ++n)
          for (int64_t oh = 0; oh < g.ho; ++oh)
            for (int64_t ow = 0; ow < g.wo; ++ow)
              for (int64_t c = 0; c < g.c; ++c) {
                int tap = 0;
                ky.push_back(is_max ? kernels::max_pool_value(v.data(), g, n, oh, ow, c, tap)
                                    : kernels::avg_pool_value(v.data(), g, n, oh, ow, c));
                taps.push_back(static_cast<uint8_t>(tap));
              }
        EXPECT_TRUE(same_bits(ky, y.to_vector<float>())) << "forward";
        const std::vector<float> pdy = dy.to_vector<float>();
        std::vector<float> kdx;
        for (int64_t n = 0; n < g.n; ++n)
          for (int64_t ih = 0; ih < g.h; ++ih)
            for (int64_t iw = 0; iw < g.w; ++iw)
              for (int64_t c = 0; c < g.c; ++c) {
                kdx.push_back(is_max ? kernels::pool_input_grad<true>(pdy.data(), taps.data(), g, n, ih, iw, c)
                                     : kernels::pool_input_grad<false>(pdy.data(), taps.data(), g, n, ih, iw, c));
              }
        EXPECT_TRUE(same_bits(kdx, x.grad().to_vector<float>())) << "input gradient";
      }
    }
  }
}

}  // namespace
}  // namespace pmpl
