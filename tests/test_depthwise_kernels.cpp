// The depthwise convolution's per-element functions (core/kernels/depthwise.h), which the CUDA
// kernels run one thread per group of channels, emulated here over every element and equal to
// the CPU op bit for bit: forward, input gradient and, chunk by chunk, weight gradient, for every
// kernel size and stride MobileNetV2 and the enhancers use, on odd sizes; and the channel groups
// the GPU loads as one 16-byte access equal one channel at a time.
#include "core/kernels/depthwise.h"
#include "tests/test_util.h"

namespace pmpl {
namespace {

TEST(DepthwiseKernels, EqualTheCpuOpOnEveryElement) {
  for (int k : {3, 5, 7}) {
    for (int stride : {1, 2}) {
      for (const Shape& shape : std::vector<Shape>{{2, 9, 7, 13}, {1, 4, 11, 3}, {1, 1, 1, 5}, {40, 58, 5, 3}}) {
        SCOPED_TRACE(testing::Message() << "k " << k << " stride " << stride << " " << shape.str());
        const Tensor x = test::random(shape, 1, true, 1.0, DType::kF32);
        const Tensor w = test::random({shape[3], k, k}, 2, true, 1.0, DType::kF32);
        const Tensor y = ops::depthwise_conv2d(x, w, stride, k / 2);
        const Tensor dy = test::random(y.shape(), 3, false, 1.0, DType::kF32);
        y.backward(dy);
        const kernels::DwShape g{shape[0], shape[1], shape[2], shape[3], k, y.dim(1), y.dim(2), stride, k / 2};
        // The kernels take the weight as [k, k, C].
        std::vector<float> wt(static_cast<size_t>(w.numel()));
        const float* pw = w.data<float>();
        for (int64_t c = 0; c < g.c; ++c)
          for (int64_t t = 0; t < k * k; ++t) wt[static_cast<size_t>(t * g.c + c)] = pw[c * k * k + t];
        const float* px = x.data<float>();
        const float* pdy = dy.data<float>();
        std::vector<float> ky, kdx, kdw(static_cast<size_t>(w.numel()));
        for (int64_t n = 0; n < g.n; ++n)
          for (int64_t oh = 0; oh < g.ho; ++oh)
            for (int64_t ow = 0; ow < g.wo; ++ow)
              for (int64_t c = 0; c < g.c; ++c) ky.push_back(kernels::dw_output(px, wt.data(), g, n, oh, ow, c));
        for (int64_t n = 0; n < g.n; ++n)
          for (int64_t ih = 0; ih < g.h; ++ih)
            for (int64_t iw = 0; iw < g.w; ++iw)
              for (int64_t c = 0; c < g.c; ++c) kdx.push_back(kernels::dw_input_grad(pdy, wt.data(), g, n, ih, iw, c));
        for (int64_t c = 0; c < g.c; ++c)
          for (int64_t t = 0; t < k * k; ++t) {
            float acc = 0.0f;  // the chunks added in order, as the CUDA weight_sum kernel does
            for (int64_t chunk = 0; chunk < kernels::dw_weight_chunks(g); ++chunk) {
              acc += kernels::dw_weight_grad_chunk(px, pdy, g, chunk, t / k, t % k, c);
            }
            kdw[static_cast<size_t>(c * k * k + t)] = acc;
          }
        EXPECT_EQ(ky, y.to_vector<float>());
        EXPECT_EQ(kdx, x.grad().to_vector<float>());
        EXPECT_EQ(kdw, w.grad().to_vector<float>());
      }
    }
  }
}

// Groups of V channels (the kernels' 16-byte loads: 4 f32 or 8 bf16) give each channel exactly
// what the one-channel functions give, on data stored as S.
template <int V, class S>
void expect_groups_equal_channels() {
  for (int k : {3, 5}) {
    for (int stride : {1, 2}) {
      const kernels::DwShape g{2, 9, 7, 2 * V, k, (9 + 2 * (k / 2) - k) / stride + 1, (7 + 2 * (k / 2) - k) / stride + 1,
                               stride, k / 2};
      SCOPED_TRACE(testing::Message() << "V " << V << " k " << k << " stride " << stride);
      auto values = [](int64_t count, uint64_t seed) {
        std::vector<S> v;
        for (double e : test::as_doubles(test::random({count}, seed, false, 1.0, DType::kF32))) {
          v.push_back(S(static_cast<float>(e)));
        }
        return v;
      };
      const std::vector<S> x = values(g.n * g.h * g.w * g.c, 4), wt = values(g.k * g.k * g.c, 5),
                           dy = values(g.n * g.ho * g.wo * g.c, 6);
      for (int64_t c = 0; c < g.c; c += V) {
        for (int64_t n = 0; n < g.n; ++n)
          for (int64_t h = 0; h < g.ho; ++h)
            for (int64_t w = 0; w < g.wo; ++w) {
              float y[V];
              kernels::dw_outputs<V>(x.data(), wt.data(), g, n, h, w, c, y);
              for (int j = 0; j < V; ++j) ASSERT_EQ(y[j], kernels::dw_output(x.data(), wt.data(), g, n, h, w, c + j));
            }
        for (int64_t n = 0; n < g.n; ++n)
          for (int64_t h = 0; h < g.h; ++h)
            for (int64_t w = 0; w < g.w; ++w) {
              float d[V];
              kernels::dw_input_grads<V>(dy.data(), wt.data(), g, n, h, w, c, d);
              for (int j = 0; j < V; ++j) {
                ASSERT_EQ(d[j], kernels::dw_input_grad(dy.data(), wt.data(), g, n, h, w, c + j));
              }
            }
        for (int64_t chunk = 0; chunk < kernels::dw_weight_chunks(g); ++chunk)
          for (int64_t t = 0; t < k * k; ++t) {
            float a[V];
            kernels::dw_weight_grad_chunks<V>(x.data(), dy.data(), g, chunk, t / k, t % k, c, a);
            for (int j = 0; j < V; ++j) {
              ASSERT_EQ(a[j], kernels::dw_weight_grad_chunk(x.data(), dy.data(), g, chunk, t / k, t % k, c + j));
            }
          }
      }
    }
  }
}

TEST(DepthwiseKernels, ChannelGroupsEqualSingleChannels) {
  expect_groups_equal_channels<4, float>();
  expect_groups_equal_channels<8, bf16>();
}

}  // namespace
}  // namespace pmpl
