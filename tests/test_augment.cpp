// RandAugment (data/rand_augment.h) and the Pillow operations under it (data/pil_ops.h): each op
// byte-equal to Pillow on fixed images (tests/fixtures/augment_pil.json, tools/make_augment_fixtures.py),
// timm's configuration strings and level functions, and the policy's draws.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "data/auto_augment.h"
#include "data/color_jitter.h"
#include "data/image_folder.h"
#include "data/jpeg_encode.h"
#include "data/loader.h"
#include "data/pil_ops.h"
#include "data/rand_augment.h"
#include "data/tv_augment.h"
#include "engine/error.h"
#include "tests/test_util.h"

namespace pmpl::data {
namespace {

const nlohmann::json& fixture() {
  static const nlohmann::json j = [] {
    std::ifstream in(std::string(PMPL_SOURCE_DIR) + "/tests/fixtures/augment_pil.json");
    return nlohmann::json::parse(in);
  }();
  return j;
}

const std::map<std::string, TvOp>& tv_ops() {
  static const std::map<std::string, TvOp> ops = {
      {"identity", TvOp::kIdentity},     {"shear_x", TvOp::kShearX},     {"shear_y", TvOp::kShearY},
      {"translate_x", TvOp::kTranslateX}, {"translate_y", TvOp::kTranslateY}, {"rotate", TvOp::kRotate},
      {"brightness", TvOp::kBrightness}, {"color", TvOp::kColor},        {"contrast", TvOp::kContrast},
      {"sharpness", TvOp::kSharpness},   {"posterize", TvOp::kPosterize}, {"solarize", TvOp::kSolarize},
      {"autocontrast", TvOp::kAutoContrast}, {"equalize", TvOp::kEqualize}, {"invert", TvOp::kInvert}};
  return ops;
}

std::vector<uint8_t> run_pil_op(const std::string& op, const nlohmann::json& args, std::vector<uint8_t> rgb, int w,
                                int h) {
  const size_t n = static_cast<size_t>(w) * h;
  std::vector<uint8_t> scratch;
  const uint8_t timm_fill[3] = {124, 116, 104};
  if (op.rfind("bicubic_", 0) == 0) {
    const double v = args[0];
    std::vector<uint8_t> out(rgb.size());
    if (op == "bicubic_rotate") {
      pil_rotate(rgb.data(), out.data(), w, h, v, PilResample::kBicubic, timm_fill);
      return out;
    }
    const double shear[6] = {1, v, 0, 0, 1, 0}, translate[6] = {1, 0, 0, 0, 1, v * h};
    pil_affine(rgb.data(), out.data(), w, h, op == "bicubic_shear_x" ? shear : translate, PilResample::kBicubic,
               timm_fill);
    return out;
  }
  if (op.rfind("tv_", 0) == 0) {
    apply_tv_op(tv_ops().at(op.substr(3)), args[0], rgb.data(), w, h, scratch);
    return rgb;
  }
  const uint8_t fill[3] = {124, 116, 104};
  const auto affine = [&](double a, double b, double c, double d, double e, double f) {
    const double m[6] = {a, b, c, d, e, f};
    std::vector<uint8_t> out(rgb.size());
    pil_affine(rgb.data(), out.data(), w, h, m, PilResample::kBilinear, fill);
    return out;
  };
  if (op == "autocontrast") pil_autocontrast(rgb.data(), n);
  else if (op == "equalize") pil_equalize(rgb.data(), n);
  else if (op == "invert") pil_invert(rgb.data(), n);
  else if (op == "posterize") pil_posterize(rgb.data(), n, args[0]);
  else if (op == "solarize") pil_solarize(rgb.data(), n, args[0]);
  else if (op == "solarize_add") pil_solarize_add(rgb.data(), n, args[0], args[1]);
  else if (op == "color") pil_enhance_color(rgb.data(), n, args[0], scratch);
  else if (op == "contrast") pil_enhance_contrast(rgb.data(), n, args[0], scratch);
  else if (op == "brightness") pil_enhance_brightness(rgb.data(), n, args[0]);
  else if (op == "sharpness") pil_enhance_sharpness(rgb.data(), w, h, args[0], scratch);
  else if (op == "shear_x") return affine(1, args[0], 0, 0, 1, 0);
  else if (op == "shear_y") return affine(1, 0, 0, args[0], 1, 0);
  else if (op == "translate_x") return affine(1, 0, args[0].get<double>() * w, 0, 1, 0);
  else if (op == "translate_y") return affine(1, 0, 0, 0, 1, args[0].get<double>() * h);
  else if (op == "rotate") {
    std::vector<uint8_t> out(rgb.size());
    pil_rotate(rgb.data(), out.data(), w, h, args[0], PilResample::kBilinear, fill);
    return out;
  } else {
    ADD_FAILURE() << "unknown op " << op;
  }
  return rgb;
}

TEST(Augment, EveryOpIsPillowsByteForByte) {
  const nlohmann::json& f = fixture();
  std::set<std::string> ops;
  for (const auto& c : f["cases"]) {
    const auto& image = f["images"][c["image"].get<size_t>()];
    const int w = image["width"], h = image["height"];
    const std::vector<uint8_t> src = test::base64(image["rgb"]);
    const std::vector<uint8_t> want = test::base64(c["rgb"]);
    const std::vector<uint8_t> got = run_pil_op(c["op"], c["args"], src, w, h);
    ASSERT_EQ(got.size(), want.size());
    size_t wrong = 0, first = got.size();
    for (size_t i = 0; i < got.size(); ++i) {
      if (got[i] == want[i]) continue;
      ++wrong;
      first = std::min(first, i);
    }
    EXPECT_EQ(wrong, 0u) << c["op"] << " " << c["args"] << " on image " << c["image"] << ": first at byte " << first
                         << " (pixel " << first / 3 << "): " << int(got[first % got.size()]) << " vs Pillow's "
                         << int(want[first % want.size()]);
    if (src != want) ops.insert(c["op"]);
  }
  // timm's 15 (3 of them bicubic too) and torchvision's 14 besides Identity: each changes some
  // image (a fixture that cannot catch a no-op is no test).
  EXPECT_EQ(ops.size(), 32u);
  EXPECT_EQ(ops.count("tv_identity"), 0u);
}

TEST(Augment, ReadsTimmsConfigurationStrings) {
  const RandAugmentOptions a = parse_rand_augment("rand-m9-mstd0.5");
  EXPECT_TRUE(a.enabled());
  EXPECT_EQ(a.layers, 2);
  EXPECT_EQ(a.magnitude, 9.0);
  EXPECT_EQ(a.magnitude_std, 0.5);
  EXPECT_EQ(a.magnitude_max, 10.0);
  EXPECT_EQ(a.prob, 0.5);
  EXPECT_FALSE(a.increasing);
  const RandAugmentOptions b = parse_rand_augment("rand-m7-n3-mstd101-inc1-mmax12-p0.8");
  EXPECT_EQ(b.magnitude, 7.0);
  EXPECT_EQ(b.layers, 3);
  EXPECT_TRUE(std::isinf(b.magnitude_std)) << "timm: mstd over 100 means uniform";
  EXPECT_TRUE(b.increasing);
  EXPECT_EQ(b.magnitude_max, 12.0);
  EXPECT_EQ(b.prob, 0.8);
  EXPECT_EQ(parse_rand_augment("rand").magnitude, 10.0) << "timm's default magnitude";
  EXPECT_FALSE(parse_rand_augment("").enabled());
  for (const char* bad : {"randaug", "auto-m9", "rand-m", "rand-x9", "rand-m9-mstd", "rand-n0", "rand-p1.5",
                          "rand-m9-", "rand-mx9", "rand-m-9"}) {
    EXPECT_THROW(parse_rand_augment(bad), Error) << bad;
  }
}

// The level functions: each op at magnitude 9 (and the sign flip) gives timm's argument, seen
// through the op itself on a fixture image.
TEST(Augment, LevelsAreTimms) {
  const auto& image = fixture()["images"][0];
  const int w = image["width"], h = image["height"];
  const std::vector<uint8_t> src = test::base64(image["rgb"]);
  const auto op_at = [&](AugmentOp op, double magnitude, bool negate, bool increasing,
                         PilResample resample = PilResample::kBilinear) {
    std::vector<uint8_t> rgb = src, scratch;
    apply_augment_op(op, magnitude, negate, increasing, resample, rgb.data(), w, h, scratch);
    return rgb;
  };
  const auto pil = [&](const std::string& name, nlohmann::json args) { return run_pil_op(name, args, src, w, h); };
  // (9 / 10) * 30 = 27 degrees; * 0.3 = 0.27 shear; * 0.45 = 0.405 of the side; 4 bits: int(3.6) = 3;
  // solarize: int(0.9 * 256) = 230; solarize add: int(0.9 * 110) = 99; enhance: 0.9 * 1.8 + 0.1 = 1.72.
  EXPECT_EQ(op_at(AugmentOp::kRotate, 9, false, false), pil("rotate", {27.0}));
  EXPECT_EQ(op_at(AugmentOp::kRotate, 9, true, false), pil("rotate", {-27.0}));
  EXPECT_EQ(op_at(AugmentOp::kShearX, 9, false, false), pil("shear_x", {0.27}));
  EXPECT_EQ(op_at(AugmentOp::kShearX, 9, false, false, PilResample::kBicubic), pil("bicubic_shear_x", {0.27}));
  EXPECT_EQ(op_at(AugmentOp::kRotate, 4.5, true, false, PilResample::kBicubic), pil("bicubic_rotate", {-13.5}));
  EXPECT_EQ(op_at(AugmentOp::kShearY, 9, true, false), pil("shear_y", {-0.27}));
  EXPECT_EQ(op_at(AugmentOp::kTranslateXRel, 9, true, false), pil("translate_x", {-0.405}));
  EXPECT_EQ(op_at(AugmentOp::kTranslateYRel, 4.5, false, false), pil("translate_y", {0.2025}));
  EXPECT_EQ(op_at(AugmentOp::kPosterize, 9, false, false), pil("posterize", {3}));
  EXPECT_EQ(op_at(AugmentOp::kPosterize, 9, false, true), pil("posterize", {1}));
  EXPECT_EQ(op_at(AugmentOp::kSolarize, 9, false, false), pil("solarize", {230}));
  EXPECT_EQ(op_at(AugmentOp::kSolarize, 9, false, true), pil("solarize", {26}));
  EXPECT_EQ(op_at(AugmentOp::kSolarizeAdd, 9, false, false), pil("solarize_add", {99, 128}));
  EXPECT_EQ(op_at(AugmentOp::kSolarizeAdd, 10, false, false), pil("solarize_add", {110, 128}));
  EXPECT_EQ(op_at(AugmentOp::kColor, 9, false, false), pil("color", {1.72}));
  EXPECT_EQ(op_at(AugmentOp::kContrast, 9, true, false), pil("contrast", {1.72})) << "no sign in timm's plain enhance";
  EXPECT_EQ(op_at(AugmentOp::kBrightness, 1.5, false, false), pil("brightness", {0.37}));
  EXPECT_EQ(op_at(AugmentOp::kSharpness, 10, false, false), pil("sharpness", {1.9}));
  // Increasing: 1 +- 0.9 * 0.9 = 1.81 or 0.19; never under 0.1.
  EXPECT_EQ(op_at(AugmentOp::kColor, 9, false, true), pil("color", {1.81}));
  EXPECT_EQ(op_at(AugmentOp::kBrightness, 10, true, true), pil("brightness", {0.1}));
  EXPECT_EQ(op_at(AugmentOp::kInvert, 3, true, false), pil("invert", nlohmann::json::array()));
}

// The policy's draws: ops uniform over timm's 15 (with replacement), each applied with the given
// chance, at magnitudes N(m, mstd) clamped to [0, mmax] (uniform on [0, m] for mstd > 100), the
// sign a fair coin; the same (seed, epoch, sample) gives the same plan and image.
TEST(Augment, ThePolicyDrawsAsTimmDoes) {
  constexpr int kSamples = 30000;
  const auto plans = [](const std::string& config) {
    std::vector<std::vector<AugmentStep>> out;
    for (int64_t s = 0; s < kSamples; ++s) out.push_back(rand_augment_plan(parse_rand_augment(config), SampleRandom(5, 1, s)));
    return out;
  };
  std::map<int, int> op_count;
  int steps = 0, negated = 0, clamped = 0, bicubic = 0;
  double sum = 0, sum2 = 0;
  for (const auto& plan : plans("rand-m9-mstd0.5")) {
    ASSERT_LE(plan.size(), 2u);
    for (const AugmentStep& step : plan) {
      ++steps;
      ++op_count[static_cast<int>(step.op)];
      negated += step.negate;
      bicubic += step.resample == PilResample::kBicubic;
      clamped += step.magnitude == 10.0;
      sum += step.magnitude;
      sum2 += step.magnitude * step.magnitude;
      ASSERT_GE(step.magnitude, 0.0);
      ASSERT_LE(step.magnitude, 10.0);
    }
  }
  // 2 layers x chance 0.5: 30000 expected steps (sd ~ 122).
  EXPECT_NEAR(steps, kSamples, 600);
  ASSERT_EQ(op_count.size(), 15u);
  for (const auto& [op, n] : op_count) EXPECT_NEAR(n, steps / 15.0, 6 * std::sqrt(steps / 15.0)) << op;
  EXPECT_NEAR(negated, steps / 2.0, 6 * std::sqrt(steps / 4.0));
  EXPECT_NEAR(bicubic, steps / 2.0, 6 * std::sqrt(steps / 4.0));
  // N(9, 0.5) clamped at 10: P(> 10) = 2.3%; the mean and sd of the clamped normal are 8.998 and 0.49.
  EXPECT_NEAR(clamped, 0.0228 * steps, 6 * std::sqrt(0.0228 * steps));
  EXPECT_NEAR(sum / steps, 8.998, 0.02);
  EXPECT_NEAR(std::sqrt(sum2 / steps - (sum / steps) * (sum / steps)), 0.489, 0.02);
  double uniform_sum = 0;
  int uniform_steps = 0;
  for (const auto& plan : plans("rand-m6-mstd101-p1")) {
    ASSERT_EQ(plan.size(), 2u);
    for (const AugmentStep& step : plan) uniform_sum += step.magnitude, ++uniform_steps;
  }
  EXPECT_NEAR(uniform_sum / uniform_steps, 3.0, 0.05);  // uniform on [0, 6]
  for (const auto& plan : plans("rand-m9-p0")) EXPECT_TRUE(plan.empty());

  std::vector<uint8_t> base(9 * 7 * 3), scratch;
  for (size_t i = 0; i < base.size(); ++i) base[i] = static_cast<uint8_t>((i * 53 + 7) % 256);
  const auto image = [&](int64_t sample) {
    std::vector<uint8_t> rgb = base;
    rand_augment(parse_rand_augment("rand-m9-mstd0.5-p1"), SampleRandom(5, 1, sample), rgb.data(), 9, 7, scratch);
    return rgb;
  };
  EXPECT_EQ(image(3), image(3));
  EXPECT_NE(image(3), base);
  EXPECT_NE(image(3), image(4));
}

// torchvision's adjust_hue through Pillow's HSV conversions, byte for byte on 1,024 random colours.
TEST(Augment, HueIsTorchvisionsByteForByte) {
  const nlohmann::json& hue = fixture()["hue"];
  const std::vector<uint8_t> src = test::base64(hue["rgb"]);
  int changed = 0;
  for (const auto& c : hue["cases"]) {
    std::vector<uint8_t> rgb = src;
    pil_adjust_hue(rgb.data(), rgb.size() / 3, c["factor"]);
    const std::vector<uint8_t> want = test::base64(c["rgb"]);
    size_t wrong = 0, first = 0;
    for (size_t i = 0; i < rgb.size(); ++i) {
      if (rgb[i] != want[i] && wrong++ == 0) first = i;
    }
    EXPECT_EQ(wrong, 0u) << "factor " << c["factor"] << ": first at pixel " << first / 3 << ": " << int(rgb[first])
                         << " vs " << int(want[first]) << " (source " << int(src[first]) << ")";
    changed += want != src;
  }
  EXPECT_GE(changed, 6) << "every factor but 0 changes the colours";
}

// ColorJitter's draws: the four adjustments in a uniformly random order (24 orders), brightness,
// contrast and saturation factors uniform in [max(0, 1 - s), 1 + s], hue in [-h, h]; a zero
// strength leaves its adjustment out; timm's one-value form sets the first three.
TEST(Augment, ColorJitterDrawsAsTorchvision) {
  const ColorJitterOptions o = parse_color_jitter({0.4, 1.5, 0.2, 0.1});
  std::map<std::vector<int>, int> orders;
  constexpr int kSamples = 24000;
  for (int64_t s = 0; s < kSamples; ++s) {
    const std::vector<JitterStep> plan = color_jitter_plan(o, SampleRandom(4, 0, s));
    ASSERT_EQ(plan.size(), 4u);
    std::vector<int> order;
    for (const JitterStep& step : plan) {
      order.push_back(static_cast<int>(step.kind));
      switch (step.kind) {
        case Jitter::kBrightness: EXPECT_TRUE(step.factor >= 0.6 && step.factor < 1.4); break;
        case Jitter::kContrast: EXPECT_TRUE(step.factor >= 0.0 && step.factor < 2.5); break;
        case Jitter::kSaturation: EXPECT_TRUE(step.factor >= 0.8 && step.factor < 1.2); break;
        case Jitter::kHue: EXPECT_TRUE(step.factor >= -0.1 && step.factor < 0.1); break;
      }
    }
    ++orders[order];
  }
  ASSERT_EQ(orders.size(), 24u);
  for (const auto& [order, n] : orders) EXPECT_NEAR(n, kSamples / 24.0, 6 * std::sqrt(kSamples / 24.0));
  const ColorJitterOptions one = parse_color_jitter({0.4});
  EXPECT_EQ(one.contrast, 0.4);
  EXPECT_EQ(one.saturation, 0.4);
  EXPECT_EQ(one.hue, 0.0);
  EXPECT_EQ(color_jitter_plan(one, SampleRandom(4, 0, 1)).size(), 3u) << "no hue";
  EXPECT_FALSE(parse_color_jitter({}).enabled());
  for (const std::vector<double>& bad : std::vector<std::vector<double>>{{0.4, 0.4}, {-0.1}, {0.1, 0.1, 0.1, 0.6}}) {
    EXPECT_THROW(parse_color_jitter(bad), Error);
  }
}

// The magnitude tables are torch.linspace's float32 values (and torchvision's posterize bins).
TEST(Augment, TorchvisionTablesAreTorchs) {
  const nlohmann::json& t = fixture()["tables"];
  const std::map<std::string, TvOp> names = {{"ShearX", TvOp::kShearX},     {"ShearY", TvOp::kShearY},
                                             {"TranslateX", TvOp::kTranslateX}, {"TranslateY", TvOp::kTranslateY},
                                             {"Rotate", TvOp::kRotate},     {"Brightness", TvOp::kBrightness},
                                             {"Color", TvOp::kColor},       {"Contrast", TvOp::kContrast},
                                             {"Sharpness", TvOp::kSharpness}, {"Posterize", TvOp::kPosterize},
                                             {"Solarize", TvOp::kSolarize}};
  int checked = 0;
  for (const auto& [policy, tables] : t.items()) {
    for (const auto& [name, values] : tables.items()) {
      const TvTables ours = policy == "wide" ? trivial_augment_wide_table(names.at(name))
                                             : auto_augment_imagenet_table(names.at(name));
      ASSERT_EQ(ours.size, static_cast<int>(values.size())) << policy << " " << name;
      for (int i = 0; i < ours.size; ++i) {
        EXPECT_EQ(ours.values[i], values[static_cast<size_t>(i)].get<float>()) << policy << " " << name << " " << i;
      }
      ++checked;
    }
  }
  EXPECT_EQ(checked, 11 + 9);
}

// TrivialAugmentWide: one op of 14, one bin of 31, a sign for the signed ones; AutoAugment: one
// of 25 pairs, each half at its chance, its fixed bin, a sign.
TEST(Augment, TorchvisionPoliciesDrawAsTorchvision) {
  constexpr int kSamples = 28000;
  std::map<TvOp, int> ops;
  std::map<double, int> shear;
  int negative = 0, signed_steps = 0;
  for (int64_t s = 0; s < kSamples; ++s) {
    const std::vector<TvStep> plan = trivial_augment_wide_plan(SampleRandom(2, 0, s));
    ASSERT_EQ(plan.size(), 1u);
    ++ops[plan[0].op];
    if (plan[0].op == TvOp::kShearX) ++shear[std::fabs(plan[0].magnitude)];
    if (plan[0].op == TvOp::kRotate) ++signed_steps, negative += plan[0].magnitude < 0;
    if (plan[0].op == TvOp::kPosterize) EXPECT_GE(plan[0].magnitude, 2.0);
    if (plan[0].op == TvOp::kSolarize) EXPECT_GE(plan[0].magnitude, 0.0);
  }
  ASSERT_EQ(ops.size(), 14u);
  for (const auto& [op, n] : ops) EXPECT_NEAR(n, kSamples / 14.0, 6 * std::sqrt(kSamples / 14.0)) << static_cast<int>(op);
  EXPECT_EQ(shear.size(), 31u);
  EXPECT_NEAR(negative, signed_steps / 2.0, 6 * std::sqrt(signed_steps / 4.0));
  // AutoAugment: Equalize appears in 17 halves at chances summing to 11.2 (over 25 pairs), Invert
  // in 3 at 0.6 each; posterize's bins 5-8 give 6, 5, 5 and 4 bits.
  int equalize = 0, invert = 0;
  for (int64_t s = 0; s < kSamples; ++s) {
    for (const TvStep& step : auto_augment_imagenet_plan(SampleRandom(2, 0, s))) {
      equalize += step.op == TvOp::kEqualize;
      invert += step.op == TvOp::kInvert;
      if (step.op == TvOp::kPosterize) EXPECT_TRUE(step.magnitude >= 4.0 && step.magnitude <= 6.0) << step.magnitude;
      EXPECT_NE(step.op, TvOp::kTranslateX);
    }
  }
  EXPECT_NEAR(equalize, 11.2 / 25 * kSamples, 6 * std::sqrt(11.2 / 25 * kSamples));
  EXPECT_NEAR(invert, 1.8 / 25 * kSamples, 6 * std::sqrt(1.8 / 25 * kSamples));
  EXPECT_EQ(parse_auto_augment("ta_wide").kind, AutoAugmentOptions::Kind::kTrivialWide);
  EXPECT_EQ(parse_auto_augment("imagenet").kind, AutoAugmentOptions::Kind::kImageNet);
  EXPECT_EQ(parse_auto_augment("rand-m9").kind, AutoAugmentOptions::Kind::kRand);
  EXPECT_FALSE(parse_auto_augment("").enabled());
  EXPECT_THROW(parse_auto_augment("augmix"), Error);
}

// The training loader applies the policy to each image after its crop, keyed by its sample index
// (here each image is its own class, so label = sample), the same whatever the number of workers;
// an evaluation loader does not.
TEST(Augment, TheTrainingLoaderAugmentsEachImage) {
  test::TempDir dir("pmpl_augment");
  constexpr int kImages = 12;
  for (int i = 0; i < kImages; ++i) {
    std::vector<uint8_t> rgb(20 * 16 * 3);
    for (size_t k = 0; k < rgb.size(); ++k) rgb[k] = static_cast<uint8_t>((k * (i + 3) + i * 50) % 256);
    const std::filesystem::path path = dir.path / "train" / fmt::format("c{:02}", i) / "0.jpg";
    std::filesystem::create_directories(path.parent_path());
    const std::vector<uint8_t> bytes = encode_jpeg(rgb.data(), 20, 16, JpegColor::kRgb);
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                                static_cast<std::streamsize>(bytes.size()));
  }
  const ImageFolder folder(dir.path.string(), "train");
  const auto load = [&](const std::string& aa, bool train, int workers, const ColorJitterOptions& jitter = {}) {
    LoaderOptions o;
    o.batch_size = 4;
    o.image_size = 10;
    o.workers = workers;
    o.train = train;
    o.seed = 3;
    o.auto_augment = parse_auto_augment(aa);
    o.color_jitter = jitter;
    Loader loader(folder, o);
    loader.start_epoch(1);
    std::vector<std::pair<int64_t, std::vector<uint8_t>>> images;
    while (auto b = loader.next()) {
      const auto pixels = b->images.to_vector<uint8_t>();
      const auto labels = b->labels.to_vector<int64_t>();
      for (size_t r = 0; r < labels.size(); ++r) {
        images.emplace_back(labels[r], std::vector<uint8_t>(pixels.begin() + r * 300, pixels.begin() + (r + 1) * 300));
      }
    }
    return images;
  };
  const std::string aa = "rand-m9-mstd0.5-p1";
  const auto plain = load("", true, 1), augmented = load(aa, true, 1), augmented3 = load(aa, true, 3);
  ASSERT_EQ(augmented.size(), static_cast<size_t>(kImages));
  EXPECT_EQ(augmented, augmented3);
  std::vector<uint8_t> scratch;
  int changed = 0;
  for (size_t i = 0; i < plain.size(); ++i) {
    ASSERT_EQ(plain[i].first, augmented[i].first);
    std::vector<uint8_t> expect = plain[i].second;
    rand_augment(parse_rand_augment(aa), SampleRandom(3 ^ kAutoAugmentStream, 1, plain[i].first), expect.data(), 10, 10,
                 scratch);
    EXPECT_EQ(augmented[i].second, expect) << "image " << i;
    changed += augmented[i].second != plain[i].second;
  }
  EXPECT_GT(changed, kImages / 2);
  EXPECT_EQ(load(aa, false, 1), load("", false, 1)) << "evaluation images are not augmented";
  // Colour jitter after the policy, on a stream of its own.
  const ColorJitterOptions jitter = parse_color_jitter({0.4, 0.4, 0.4, 0.1});
  const auto both = load(aa, true, 2, jitter);
  for (size_t i = 0; i < augmented.size(); ++i) {
    std::vector<uint8_t> expect = augmented[i].second;
    color_jitter(jitter, SampleRandom(3 ^ kColorJitterStream, 1, augmented[i].first), expect.data(), 10, 10, scratch);
    EXPECT_EQ(both[i].second, expect) << "image " << i;
  }
}

}  // namespace
}  // namespace pmpl::data
