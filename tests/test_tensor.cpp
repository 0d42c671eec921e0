// Tensor basics, dtypes (bf16/f16 conversion exhaustively), the caching allocator and the RNG.
#include <cmath>
#include <set>

#include "engine/allocator.h"
#include "engine/dispatch.h"
#include "tests/test_util.h"

namespace pmpl {
namespace {

TEST(Tensor, FactoriesAndViews) {
  Tensor t = Tensor::full(Shape{2, 3}, 1.5);
  EXPECT_EQ(t.numel(), 6);
  EXPECT_EQ(t.dim(-1), 3);
  for (float v : t.to_vector<float>()) EXPECT_EQ(v, 1.5f);
  Tensor flat = Tensor::from_vector<float>({0, 1, 2, 3, 4, 5, 6, 7}, Shape{8});
  Tensor view = flat.view_slice(2, Shape{2, 2});
  EXPECT_EQ(view.to_vector<float>(), (std::vector<float>{2, 3, 4, 5}));
  view.fill_(9.0);  // writes through to the flat buffer
  EXPECT_EQ(flat.to_vector<float>(), (std::vector<float>{0, 1, 9, 9, 9, 9, 6, 7}));
  Tensor copy = flat.clone();
  copy.fill_(0.0);
  EXPECT_EQ(flat.to_vector<float>()[2], 9.0f);
  EXPECT_EQ(Tensor::ones(Shape{}).item(), 1.0);
}

TEST(Tensor, ConversionsBetweenAllDtypes) {
  const std::vector<double> values{0.0, 1.0, -2.0, 3.0, 100.0, 7.0};
  const Tensor src = Tensor::from_vector(values, Shape{6});
  for (DType a : {DType::kF32, DType::kBF16, DType::kF16, DType::kI32, DType::kI64}) {
    for (DType b : {DType::kF32, DType::kF64, DType::kBF16, DType::kF16, DType::kI32, DType::kI64}) {
      // Small integers survive every dtype (u8 is left out: -2 does not fit).
      EXPECT_EQ(test::as_doubles(src.to(a).to(b)), values) << dtype_name(a) << " -> " << dtype_name(b);
    }
  }
  EXPECT_EQ(Tensor::full(Shape{1}, 200.0).to(DType::kU8).item(), 200.0);
}

TEST(Tensor, MisuseIsAClearError) {
  Tensor t = Tensor::zeros(Shape{2, 3});
  EXPECT_THROW(t.reshape(Shape{4}), Error);
  EXPECT_THROW(Tensor::zeros(Shape{2}, DType::kI64).set_requires_grad(true), Error);
  EXPECT_THROW((Shape{1, 2, 3, 4, 5, 6}), Error);
  EXPECT_THROW(parse_dtype("f8"), Error);
  EXPECT_THROW(parse_device("tpu"), Error);
  EXPECT_EQ(parse_device("cuda:1"), Device::cuda(1));
  EXPECT_THROW(ops::add(t, Tensor::zeros(Shape{4})), Error);
  EXPECT_THROW(ops::conv2d(t, t), Error);
  EXPECT_THROW(ops::max_pool2d(Tensor::zeros(Shape{1, 2, 2, 1}), 3, 1, 0), Error);
  EXPECT_THROW(ops::add(t, t.to(DType::kF64)), Error);
  Tensor labels = Tensor::from_vector<int64_t>({0, 3}, Shape{2});
  EXPECT_THROW(ops::cross_entropy(Tensor::zeros(Shape{2, 3}), labels), Error);
}

TEST(Dtype, F16RoundTripsEveryBitPattern) {
  int checked = 0;
  for (uint32_t bits = 0; bits < 65536; ++bits) {
    f16 h;
    h.bits = static_cast<uint16_t>(bits);
    const float f = static_cast<float>(h);
    if (std::isnan(f)) continue;
    ASSERT_EQ(f16(f).bits, bits) << "f16 bits " << bits << " -> " << f;
    ++checked;
  }
  EXPECT_EQ(checked, 65536 - 2 * 1023);
}

TEST(Dtype, Bf16RoundTripsEveryBitPattern) {
  for (uint32_t bits = 0; bits < 65536; ++bits) {
    bf16 b;
    b.bits = static_cast<uint16_t>(bits);
    const float f = static_cast<float>(b);
    if (std::isnan(f)) continue;
    ASSERT_EQ(bf16(f).bits, bits) << "bf16 bits " << bits;
  }
}

TEST(Dtype, RoundsToNearestEven) {
  EXPECT_EQ(f16(1.0f).bits, 0x3C00);
  EXPECT_EQ(f16(0.1f).bits, 0x2E66);
  EXPECT_EQ(f16(65504.0f).bits, 0x7BFF);
  EXPECT_EQ(f16(65520.0f).bits, 0x7C00);  // halfway to the next binade: rounds to infinity
  EXPECT_EQ(f16(5.9604645e-8f).bits, 0x0001);
  EXPECT_EQ(f16(2.9802322e-8f).bits, 0x0000);  // exactly half the smallest subnormal: to even
  EXPECT_EQ(f16(1.0f + 0x1p-11f).bits, 0x3C00);  // tie: to even
  EXPECT_EQ(f16(1.0f + 3 * 0x1p-11f).bits, 0x3C02);
  EXPECT_EQ(bf16(1.0f).bits, 0x3F80);
  EXPECT_EQ(bf16(0.1f).bits, 0x3DCD);
  EXPECT_EQ(bf16(1.0f + 0x1p-8f).bits, 0x3F80);  // tie: to even
  EXPECT_TRUE(std::isnan(static_cast<float>(bf16(NAN))));
}

TEST(Allocator, ReusesFreedBlocksOfTheSameBin) {
  CachingAllocator& a = cpu_allocator();
  const AllocatorStats before = a.stats();
  void* first = a.allocate(1000000);
  a.deallocate(first, 1000000);
  void* second = a.allocate(999000);  // same bin
  EXPECT_EQ(second, first);
  a.deallocate(second, 999000);
  const AllocatorStats after = a.stats();
  EXPECT_GE(after.cache_hits, before.cache_hits + 1);
  EXPECT_EQ(after.allocated, before.allocated);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(first) % 64, 0u);
}

TEST(Allocator, BinsBoundTheSlack) {
  for (size_t n : {size_t{1}, size_t{64}, size_t{65}, size_t{4096}, size_t{4097}, size_t{1} << 20,
                   (size_t{1} << 20) + 1, size_t{123456789}}) {
    const size_t bin = CachingAllocator::bin_size(n);
    EXPECT_GE(bin, n);
    EXPECT_EQ(bin % 64, 0u);
    EXPECT_LE(bin, std::max<size_t>(64, n + n / 4 + 64)) << n;
  }
}

// A training step frees and re-allocates the same buffers: the second step must not touch the
// system allocator at all.
TEST(Allocator, RepeatedStepsHitTheCache) {
  auto step = [] {
    Tensor x = test::random({8, 16, 16, 32}, 1, true, 1.0, DType::kF32);
    Tensor w = test::random({32, 3, 3}, 2, true, 1.0, DType::kF32);
    ops::sum(ops::relu6(ops::depthwise_conv2d(x, w, 1, 1))).backward();
  };
  step();
  const size_t system_before = cpu_allocator().stats().system_allocs;
  step();
  EXPECT_EQ(cpu_allocator().stats().system_allocs, system_before);
}

TEST(Allocator, PoisonsNewBlocksInTests) {
  ASSERT_TRUE(poison_allocations());
  Tensor t = Tensor::empty(Shape{16});
  for (float v : t.to_vector<float>()) EXPECT_TRUE(std::isnan(v));
}

// Known-answer vectors of Philox4x32-10 from the Random123 distribution (kat_vectors).
TEST(Rng, PhiloxKnownAnswers) {
  const Philox4 zero = philox4x32_raw({{0, 0, 0, 0}}, 0, 0);
  EXPECT_EQ(zero.v[0], 0x6627e8d5u);
  EXPECT_EQ(zero.v[1], 0xe169c58du);
  EXPECT_EQ(zero.v[2], 0xbc57ac4cu);
  EXPECT_EQ(zero.v[3], 0x9b00dbd8u);
  const Philox4 ones = philox4x32_raw({{~0u, ~0u, ~0u, ~0u}}, ~0u, ~0u);
  EXPECT_EQ(ones.v[0], 0x408f276du);
  EXPECT_EQ(ones.v[1], 0x41c83b0eu);
  EXPECT_EQ(ones.v[2], 0xa20bc7c6u);
  EXPECT_EQ(ones.v[3], 0x6d5451fdu);
  const Philox4 pi = philox4x32_raw({{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}},
                                    0xa4093822u, 0x299f31d0u);
  EXPECT_EQ(pi.v[0], 0xd16cfe09u);
  EXPECT_EQ(pi.v[1], 0x94fdccebu);
  EXPECT_EQ(pi.v[2], 0x5001e420u);
  EXPECT_EQ(pi.v[3], 0x24126ea1u);
}

TEST(Rng, NormalAndUniformHaveTheRightMoments) {
  Generator gen(42);
  const std::vector<float> n = Tensor::randn(Shape{200000}, gen).to_vector<float>();
  const std::vector<float> u = Tensor::uniform(Shape{200000}, -1.0, 3.0, gen).to_vector<float>();
  double mean = 0, sq = 0, umin = 1e9, umax = -1e9, umean = 0;
  for (float v : n) {
    mean += v;
    sq += double(v) * v;
  }
  for (float v : u) {
    umin = std::min<double>(umin, v);
    umax = std::max<double>(umax, v);
    umean += v;
  }
  mean /= n.size();
  // Standard errors are 1/sqrt(2e5) ~ 0.0022 for the mean, ~0.003 for the variance.
  EXPECT_NEAR(mean, 0.0, 0.01);
  EXPECT_NEAR(sq / n.size() - mean * mean, 1.0, 0.015);
  EXPECT_GE(umin, -1.0);
  EXPECT_LT(umax, 3.0);
  EXPECT_NEAR(umean / u.size(), 1.0, 0.01);
  // The stream moved on: the next draw differs, and a generator at the same state repeats it.
  Generator a(5), b(5);
  EXPECT_EQ(Tensor::randn(Shape{8}, a).to_vector<float>(), Tensor::randn(Shape{8}, b).to_vector<float>());
  EXPECT_NE(Tensor::randn(Shape{8}, a).to_vector<float>(), Tensor::randn(Shape{8}, gen).to_vector<float>());
}

TEST(Rng, DropoutKeepsTheExpectedShare) {
  Generator gen(3);
  const Tensor x = Tensor::ones(Shape{100000});
  const std::vector<float> y = ops::dropout(x, 0.25, true, gen).to_vector<float>();
  int kept = 0;
  for (float v : y) {
    if (v != 0.0f) {
      EXPECT_FLOAT_EQ(v, 1.0f / 0.75f);
      ++kept;
    }
  }
  EXPECT_NEAR(kept / 100000.0, 0.75, 0.01);
  EXPECT_TRUE(ops::dropout(x, 0.25, false, gen).is_same(x));
}

// Float to integer conversion is defined for every value (C++ leaves out-of-range ones undefined,
// and x86 and GPUs differ): NaN gives 0, out-of-range values the nearest end, the rest truncate.
TEST(Tensor, FloatToIntegerConversionSaturates) {
  const Tensor x = Tensor::from_vector<float>({NAN, INFINITY, -INFINITY, -1.5f, 255.5f, 300.0f, 3e9f, -3e9f, 7.9f},
                                              Shape{9});
  EXPECT_EQ(x.to(DType::kU8).to_vector<uint8_t>(), (std::vector<uint8_t>{0, 255, 0, 0, 255, 255, 255, 0, 7}));
  EXPECT_EQ(x.to(DType::kI32).to_vector<int32_t>(),
            (std::vector<int32_t>{0, INT32_MAX, INT32_MIN, -1, 255, 300, INT32_MAX, INT32_MIN, 7}));
  EXPECT_EQ(x.to(DType::kF64).to(DType::kI64).to_vector<int64_t>()[6], 3000000000);
}

}  // namespace
}  // namespace pmpl
