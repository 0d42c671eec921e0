// int8 deployment (models/deploy/int8_kernels.h, quantize.h, graph_int8.h): the kernels against
// plain integer arithmetic, and a calibrated int8 file of the fixed Meta-Pooling network against
// the f32 one it came from.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include <onnx/onnx_pb.h>

#include "models/deploy/format.h"
#include "models/deploy/int8_kernels.h"
#include "models/deploy/onnx_export.h"
#include "models/deploy/quantize.h"
#include "models/deploy/runtime.h"
#include "tests/test_util.h"

namespace pmpl {
namespace {

template <class T>
std::vector<T> random_ints(size_t n, int lo, int hi, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int> d(lo, hi);
  std::vector<T> v(n);
  for (T& x : v) x = static_cast<T>(d(gen));
  return v;
}

// The kernels this machine runs: the portable ones always, AVX2 and AVX-512 VNNI where the CPU
// has them.
std::vector<deploy::Int8Isa> isas() { return deploy::available_int8_isas(); }

// Int8Output's uint8 value of an exact accumulator (its offset included): the product rounded to
// float as the kernels round it, then to the nearest integer with ties to even (in double, where
// nothing is lost), shifted and clamped.
int64_t requantized(int64_t acc, float scale, int32_t zero, int32_t lo, int32_t hi) {
  const double v = static_cast<float>(acc) * scale;
  return std::clamp<int64_t>(static_cast<int64_t>(std::nearbyint(v)) + zero, lo, hi);
}

TEST(Int8, RoundingIsToNearestWithTiesToEven) {
  EXPECT_EQ(deploy::round_even(0.49999997f), 0);
  EXPECT_EQ(deploy::round_even(0.5f), 0);
  EXPECT_EQ(deploy::round_even(1.5f), 2);
  EXPECT_EQ(deploy::round_even(2.5f), 2);
  EXPECT_EQ(deploy::round_even(2.5000002f), 3);
  EXPECT_EQ(deploy::round_even(-2.5f), -2);
  EXPECT_EQ(deploy::round_even(-3.5f), -4);
  // A product far outside int32 saturates to the clamp on its side.
  EXPECT_EQ(deploy::requantize_one(2000000000, 1e3f, 10, 0, 255), 255);
  EXPECT_EQ(deploy::requantize_one(-2000000000, 1e3f, 10, 3, 255), 3);
  EXPECT_EQ(deploy::requantize_one(7, 0.5f, 10, 0, 255), 14) << "3.5 rounds to 4";
  EXPECT_EQ(deploy::requantize_one(5, 0.5f, 10, 0, 255), 12) << "2.5 rounds to 2";
}

TEST(Int8, PointwiseFollowsItsDefinitionOnEveryIsa) {
  // Rows past whole tiles, channels past blocks of 16 and tiles of 4 blocks, inputs past groups
  // of 4; a long K; one pixel (a linear layer at batch 1); a layer big enough to run its tiles in
  // parallel (a tile that stored past its own channels raced with its neighbour there, when tiles
  // were 48 channels wide); extreme values included.
  struct Case {
    int64_t m, k, n;
  };
  for (const Case cs :
       {Case{37, 23, 11}, Case{13, 301, 70}, Case{1, 1280, 1000}, Case{50, 16, 96}, Case{700, 64, 144}}) {
    const auto [m, k, n] = cs;
    std::vector<uint8_t> a = random_ints<uint8_t>(static_cast<size_t>(m * k), 0, 255, 1);
    std::vector<int8_t> wt = random_ints<int8_t>(static_cast<size_t>(n * k), -127, 127, 2);
    a[0] = 255;
    wt[0] = -127;
    for (const int32_t x_zero : {0, 131}) {
      std::vector<int64_t> want(static_cast<size_t>(m * n));
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < n; ++j) {
          int64_t acc = 0;
          for (int64_t p = 0; p < k; ++p) acc += (int64_t{a[i * k + p]} - x_zero) * wt[j * k + p];
          want[static_cast<size_t>(i * n + j)] = acc;
        }
      }
      // Multipliers that put most outputs inside the clamps (uint8 and int8 uniforms have
      // standard deviations near 74), so the test sees the arithmetic.
      deploy::Requantize r;
      r.zero = 128;
      r.lo = 3;
      r.hi = 250;
      deploy::Dequantize d;
      for (int64_t j = 0; j < n; ++j) {
        r.bias.push_back(static_cast<int32_t>(37 * j % 2001) - 1000);
        r.multiplier.push_back(static_cast<float>(60.0 / (74.0 * 74.0 * std::sqrt(static_cast<double>(k)))) *
                               (1.0f + 0.01f * static_cast<float>(j % 7)));
        d.scale.push_back(1e-4f * static_cast<float>(j % 5 + 1));
        // One channel whose products overflow int32 as floats: the vector kernels' conversion
        // must still saturate them to the right clamp.
        if (j == 5) r.multiplier.back() = 1e6f;
        d.bias.push_back(0.3f * static_cast<float>(j % 9) - 1.0f);
      }
      const deploy::PackedPointwise u8(wt.data(), n, k, x_zero, deploy::make_int8_output(n, &r, nullptr));
      const deploy::PackedPointwise f32(wt.data(), n, k, x_zero, deploy::make_int8_output(n, nullptr, &d));
      std::vector<uint8_t> first_u8;
      std::vector<float> first_f32;
      for (const deploy::Int8Isa isa : isas()) {
        SCOPED_TRACE(::testing::Message() << deploy::int8_isa_name(isa) << " m " << m << " k " << k << " n " << n
                                          << " zero " << x_zero);
        std::vector<uint8_t> got(static_cast<size_t>(m * n));
        std::vector<float> got_f32(got.size());
        deploy::pointwise_u8(a.data(), m, u8, got.data(), isa);
        deploy::pointwise_u8(a.data(), m, f32, got_f32.data(), isa);
        int64_t inside = 0;
        for (int64_t i = 0; i < m; ++i) {
          for (int64_t j = 0; j < n; ++j) {
            const size_t at = static_cast<size_t>(i * n + j), c = static_cast<size_t>(j);
            const int64_t q = requantized(want[at] + r.bias[c], r.multiplier[c], r.zero, r.lo, r.hi);
            ASSERT_EQ(got[at], q) << i << "," << j;
            inside += q != r.lo && q != r.hi;
            const double f = static_cast<double>(want[at]) * d.scale[c] + d.bias[c];
            ASSERT_NEAR(got_f32[at], f, 1e-5 * (1.0 + std::abs(f))) << "f32 output at " << i << "," << j;
          }
        }
        EXPECT_GT(inside, m * n / 2);
        if (first_u8.empty()) {
          first_u8 = got;
          first_f32 = got_f32;
        }
        EXPECT_EQ(got, first_u8) << "every ISA gives the portable kernels' bits";
        EXPECT_EQ(got_f32, first_f32);
      }
    }
  }
}

TEST(Int8, DepthwiseAndRequantizationFollowTheirDefinition) {
  // 35 channels: two blocks of 16 and a masked tail; the window inside the image and across its
  // borders.
  const int64_t batch = 2, h = 7, w = 6, c = 35;
  const std::vector<uint8_t> x = random_ints<uint8_t>(static_cast<size_t>(batch * h * w * c), 0, 255, 3);
  const deploy::QuantParams in{0.05f, 117}, out{0.03f, 0};
  for (int k : {3, 5}) {
    for (int stride : {1, 2}) {
      const std::vector<int8_t> weight = random_ints<int8_t>(static_cast<size_t>(c * k * k), -127, 127, 4);
      std::vector<float> scales, bias;
      for (int64_t ch = 0; ch < c; ++ch) {
        scales.push_back(0.0002f * static_cast<float>(ch % 19 + 1));
        bias.push_back(0.1f * static_cast<float>(ch % 19 - 9));
      }
      const deploy::Requantize r = deploy::make_requantize(scales, bias, in, out, deploy::Clamp::kReLU6);
      EXPECT_EQ(r.lo, 0);
      EXPECT_EQ(r.hi, 200);  // ReLU6: 6 / 0.03
      // The f32 output (for activations no clamp expresses): acc * in_scale * weight_scale + bias.
      const deploy::Dequantize d = deploy::make_dequantize(scales, bias, in);
      const deploy::PackedDepthwise u8(weight.data(), c, k, stride, in.zero_point,
                                       deploy::make_int8_output(c, &r, nullptr));
      const deploy::PackedDepthwise f32(weight.data(), c, k, stride, in.zero_point,
                                        deploy::make_int8_output(c, nullptr, &d));
      const int pad = k / 2;
      const int64_t ho = (h + 2 * pad - k) / stride + 1, wo = (w + 2 * pad - k) / stride + 1;
      std::vector<uint8_t> first;
      for (const deploy::Int8Isa isa : isas()) {
        SCOPED_TRACE(::testing::Message() << deploy::int8_isa_name(isa) << " k " << k << " stride " << stride);
        std::vector<uint8_t> got(static_cast<size_t>(batch * ho * wo * c));
        deploy::depthwise_u8(x.data(), batch, h, w, u8, got.data(), isa);
        std::vector<float> got_f32(got.size());
        deploy::depthwise_u8(x.data(), batch, h, w, f32, got_f32.data(), isa);
        int64_t changed = 0;
        for (int64_t b = 0; b < batch; ++b) {
          for (int64_t oy = 0; oy < ho; ++oy) {
            for (int64_t ox = 0; ox < wo; ++ox) {
              for (int64_t ch = 0; ch < c; ++ch) {
                int32_t acc = 0;
                for (int ky = 0; ky < k; ++ky) {
                  for (int kx = 0; kx < k; ++kx) {
                    const int64_t iy = oy * stride + ky - pad, ix = ox * stride + kx - pad;
                    if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                    acc += (x[static_cast<size_t>(((b * h + iy) * w + ix) * c + ch)] - in.zero_point) *
                           weight[static_cast<size_t>((ch * k + ky) * k + kx)];
                  }
                }
                const size_t at = static_cast<size_t>(((b * ho + oy) * wo + ox) * c + ch);
                const int64_t q = requantized(acc + r.bias[static_cast<size_t>(ch)],
                                              r.multiplier[static_cast<size_t>(ch)], 0, 0, 200);
                ASSERT_EQ(got[at], q) << "at " << b << "," << oy << "," << ox << "," << ch;
                const double f = static_cast<double>(acc) * in.scale * scales[static_cast<size_t>(ch)] +
                                 bias[static_cast<size_t>(ch)];
                ASSERT_NEAR(got_f32[at], f, 1e-5 * (1.0 + std::abs(f))) << "f32 output at " << at;
                changed += q != 0 && q != 200;
              }
            }
          }
        }
        EXPECT_GT(changed, batch * ho * wo * c / 4) << "most outputs inside the clamp, so the test sees the arithmetic";
        if (first.empty()) first = got;
        EXPECT_EQ(got, first) << "every ISA gives the portable kernels' bits";
      }
    }
  }
  // The bias is in accumulator units: b / (in_scale * weight_scale).
  const deploy::Requantize r = deploy::make_requantize({0.5f}, {1.0f}, {0.1f, 0}, {0.2f, 10}, deploy::Clamp::kNone);
  EXPECT_EQ(r.bias[0], 20);
  EXPECT_FLOAT_EQ(r.multiplier[0], 0.25f);
  EXPECT_EQ(r.zero, 10);
  EXPECT_EQ(r.lo, 0);
  EXPECT_EQ(r.hi, 255);
  const deploy::Requantize relu = deploy::make_requantize({0.5f}, {1.0f}, {0.1f, 0}, {0.2f, 10}, deploy::Clamp::kReLU);
  EXPECT_EQ(relu.lo, 10) << "ReLU clamps at the zero point";
  EXPECT_EQ(relu.hi, 255);
}

TEST(Int8, ParametersHoldZeroExactly) {
  const deploy::QuantParams relu = deploy::choose_params(0.0, 6.0);
  EXPECT_EQ(relu.zero_point, 0);
  EXPECT_FLOAT_EQ(relu.scale, 6.0f / 255.0f);
  const deploy::QuantParams mixed = deploy::choose_params(-1.0, 3.0);
  EXPECT_EQ(mixed.zero_point, 64);
  const deploy::QuantParams positive = deploy::choose_params(2.0, 4.0);  // 0 is kept in range
  EXPECT_EQ(positive.zero_point, 0);
  EXPECT_FLOAT_EQ(positive.scale, 4.0f / 255.0f);
}

// The fixed Meta-Pooling network, calibrated on random images like those it is then run on.
deploy::DeployModel calibrated(const deploy::DeployModel& folded, const std::string& method) {
  const deploy::Runtime f32(folded);
  deploy::Calibrator calibrator({method, 99.99});
  for (int i = 0; i < 4; ++i) {
    f32.run_observed(test::random({8, 20, 20, 3}, 100 + i, false, 1.0, DType::kF32),
                     [&](const std::string& p, const Tensor& t) { calibrator.observe(p, t); });
  }
  return deploy::quantize_model(folded, calibrator, 32);
}

TEST(Int8, TheQuantizedNetworkTracksTheF32One) {
  const auto network = test::trained_fixed_network();
  const deploy::DeployModel folded = deploy::fold_model(*network, test::mp_options());
  const test::TempDir dir("pmpl_int8");
  const std::string f32_path = (dir.path / "f32.pmpl").string(), int8_path = (dir.path / "int8.pmpl").string();
  deploy::write_deploy_file(folded, false, f32_path);
  const deploy::DeployModel q = calibrated(folded, "minmax");
  deploy::write_deploy_file(q, false, int8_path);

  deploy::DeployFile file;
  std::string error;
  ASSERT_TRUE(deploy::read_deploy_file(int8_path, file, error)) << error;
  EXPECT_EQ(file.bytes[8], 2) << "an int8 file is format version 2";
  ASSERT_TRUE(deploy::read_deploy_file(f32_path, file, error)) << error;
  EXPECT_EQ(file.bytes[8], 1) << "an f32 file stays version 1, for older readers";

  const deploy::Runtime f32(f32_path), int8(int8_path);
  ASSERT_TRUE(int8.quantized());
  EXPECT_EQ(int8.config().at("dtype"), "int8");
  const Tensor x = test::random({16, 20, 20, 3}, 7, false, 1.0, DType::kF32);
  const Tensor want = f32.run(x), got = int8.run(x);
  const double err = test::relative_error(got, want);
  // Measured 0.0042: 8-bit steps through 17 blocks; a wrong scale, zero point or layout anywhere
  // gives more (a residual add reading the wrong parameters: 0.019).
  EXPECT_LT(err, 0.01) << "int8 vs f32 logits";
  // Read back, it is the same model: same logits bit for bit.
  EXPECT_EQ(test::relative_error(deploy::Runtime(deploy::read_deploy_model(int8_path)).run(x), got), 0.0);

  // Bias correction moved the biases; the layers that stay f32 are not quantised.
  EXPECT_NE(q.tensors.at("features.3.conv.2.bias").data, folded.tensors.at("features.3.conv.2.bias").data);
  EXPECT_EQ(q.tensors.at("features.0.0.weight").int8, false) << "the stem stays f32";
  EXPECT_EQ(q.tensors.at("features.2.enhancer.strip.conv1.weight").int8, false) << "strip attention stays f32";
  EXPECT_TRUE(q.tensors.at("classifier.1.weight").int8);

  // ONNX: int8 weights behind DequantizeLinear, and a QuantizeLinear for each value the runtime
  // holds in uint8 (tools/check_onnx_export.py runs such files with onnxruntime); the f32
  // network's graph has none. An int8 file cannot be calibrated again.
  const auto count_ops = [](const std::string& bytes, const std::string& op) {
    onnx::ModelProto m;
    EXPECT_TRUE(m.ParseFromString(bytes));
    int n = 0;
    for (const onnx::NodeProto& node : m.graph().node()) n += node.op_type() == op;
    return n;
  };
  const std::string onnx8 = deploy::onnx_model_bytes(q), onnx32 = deploy::onnx_model_bytes(folded);
  EXPECT_EQ(count_ops(onnx32, "QuantizeLinear"), 0);
  EXPECT_GT(count_ops(onnx8, "QuantizeLinear"), 40);
  EXPECT_GT(count_ops(onnx8, "DequantizeLinear"), 2 * 40) << "the activations' and the weights'";
  EXPECT_THROW(int8.run_observed(x, [](const std::string&, const Tensor&) {}), Error);
}

TEST(Int8, PercentileCalibrationClipsWhatMinmaxKeeps) {
  deploy::Calibrator minmax({"minmax", 99.99}), percentile({"percentile", 99.0});
  std::vector<float> v(10000);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i % 100) / 100.0f;
  v[5] = 50.0f;  // one outlier
  const Tensor t = Tensor::from_vector(v, Shape{100, 100});
  minmax.observe("p", t);
  percentile.observe("p", t);
  EXPECT_NEAR(minmax.activations().at("p").at(0).get<double>(), 50.0 / 255, 1e-6);
  EXPECT_LT(percentile.activations().at("p").at(0).get<double>(), 1.0 / 255);
  EXPECT_THROW(deploy::Calibrator({"kl", 99.0}), Error);
}

// Entropy calibration clips where an 8-bit histogram loses least: a rare outlier 50x the bulk is
// clipped (min-max would spend 98% of the steps on it), a uniform range is kept whole, and a
// Gaussian's tail is cut at a few standard deviations, on each side of zero by itself.
TEST(Int8, EntropyCalibrationClipsOutliersNotTheBulk) {
  const auto range = [](const std::vector<float>& v) {
    deploy::Calibrator c({"entropy", 99.99});
    c.observe("p", Tensor::from_vector(v, Shape{static_cast<int64_t>(v.size())}));
    const nlohmann::json q = c.activations().at("p");
    const double scale = q.at(0).get<double>(), zero = q.at(1).get<double>();
    return std::pair<double, double>{-zero * scale, (255.0 - zero) * scale};
  };
  std::mt19937 gen(3);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  std::vector<float> uniform(8000);
  for (float& v : uniform) v = unit(gen);
  const auto [ulo, uhi] = range(uniform);
  EXPECT_NEAR(uhi, 1.0, 0.03) << "a uniform range is kept whole";
  EXPECT_NEAR(ulo, 0.0, 1e-6);
  std::vector<float> outlier = uniform;
  outlier[17] = 50.0f;
  // as far as 2048 bins over [0, 50] let 255 steps go: 255.5 / 2048 * 50 = 6.24
  EXPECT_LT(range(outlier).second, 6.3) << "one value in 8000 at 50 is clipped";
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> gauss(8000);
  for (float& v : gauss) v = normal(gen);
  const auto [glo, ghi] = range(gauss);
  const float peak = *std::max_element(gauss.begin(), gauss.end());
  EXPECT_LT(ghi, peak) << "the tail is clipped";
  EXPECT_GT(ghi, 2.0) << "at more than two standard deviations";
  EXPECT_LT(glo, -2.0) << "and the negative side on its own";
  EXPECT_GT(glo, *std::min_element(gauss.begin(), gauss.end()));
}

}  // namespace
}  // namespace pmpl
