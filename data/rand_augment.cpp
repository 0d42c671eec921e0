#include "data/rand_augment.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <numbers>

#include "engine/error.h"

namespace pmpl::data {
namespace {

constexpr double kLevelDenominator = 10.0;     // timm's _LEVEL_DENOM
constexpr uint8_t kFill[3] = {124, 116, 104};  // timm's img_mean: round(255 * ImageNet's mean)
constexpr uint32_t kDrawsPerLayer = 8;         // op, chance, two for the normal, sign, filter (the rest spare)

double parse_number(const std::string& config, const std::string& key, const std::string& text) {
  double value = 0.0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  PMPL_CHECK(ec == std::errc() && ptr == end && std::isfinite(value),
             "--auto-augment {}: '{}' needs a number after it, got '{}' (e.g. rand-m9-mstd0.5)", config, key, text);
  return value;
}

}  // namespace

RandAugmentOptions parse_rand_augment(const std::string& config) {
  RandAugmentOptions o;
  if (config.empty()) return o;
  o.config = config;
  std::vector<std::string> parts;
  for (size_t start = 0;;) {
    const size_t dash = config.find('-', start);
    parts.push_back(config.substr(start, dash - start));
    if (dash == std::string::npos) break;
    start = dash + 1;
  }
  PMPL_CHECK(parts[0] == "rand", "--auto-augment {}: timm's RandAugment strings start with 'rand-' (e.g. rand-m9-mstd0.5)",
             config);
  for (size_t i = 1; i < parts.size(); ++i) {
    const std::string& part = parts[i];
    // timm splits each part at its first digit: the key before, the number from there on.
    const size_t digit = part.find_first_of("0123456789");
    PMPL_CHECK(digit != std::string::npos && digit > 0,
               "--auto-augment {}: cannot read '{}': each part is a key (m, n, mstd, mmax, p, inc) and a number",
               config, part);
    const std::string key = part.substr(0, digit);
    const double value = parse_number(config, key, part.substr(digit));
    if (key == "m") {
      o.magnitude = value;
    } else if (key == "n") {
      PMPL_CHECK(value >= 1 && value == std::floor(value) && value <= 16,
                 "--auto-augment {}: n (ops per image) must be a whole number from 1 to 16, got {}", config, value);
      o.layers = static_cast<int>(value);
    } else if (key == "mstd") {
      // timm: a std over 100 means "uniform in [0, m]".
      o.magnitude_std = value > 100 ? std::numeric_limits<double>::infinity() : value;
    } else if (key == "mmax") {
      o.magnitude_max = value;
    } else if (key == "p") {
      PMPL_CHECK(value >= 0 && value <= 1, "--auto-augment {}: p (each op's chance) must be in [0, 1], got {}",
                 config, value);
      o.prob = value;
    } else if (key == "inc") {
      // timm tests bool("0"), which is true, so its inc0 means inc1; pmpl reads 0 as off.
      o.increasing = value != 0;
    } else {
      PMPL_CHECK(false, "--auto-augment {}: unknown key '{}' (known: m, n, mstd, mmax, p, inc)", config, key);
    }
  }
  PMPL_CHECK(o.magnitude >= 0 && o.magnitude_std >= 0 && o.magnitude_max > 0,
             "--auto-augment {}: m, mstd and mmax must not be negative (mmax above 0)", config);
  return o;
}

const char* augment_op_name(AugmentOp op, bool increasing) {
  switch (op) {
    case AugmentOp::kAutoContrast: return "AutoContrast";
    case AugmentOp::kEqualize: return "Equalize";
    case AugmentOp::kInvert: return "Invert";
    case AugmentOp::kRotate: return "Rotate";
    case AugmentOp::kPosterize: return increasing ? "PosterizeIncreasing" : "Posterize";
    case AugmentOp::kSolarize: return increasing ? "SolarizeIncreasing" : "Solarize";
    case AugmentOp::kSolarizeAdd: return "SolarizeAdd";
    case AugmentOp::kColor: return increasing ? "ColorIncreasing" : "Color";
    case AugmentOp::kContrast: return increasing ? "ContrastIncreasing" : "Contrast";
    case AugmentOp::kBrightness: return increasing ? "BrightnessIncreasing" : "Brightness";
    case AugmentOp::kSharpness: return increasing ? "SharpnessIncreasing" : "Sharpness";
    case AugmentOp::kShearX: return "ShearX";
    case AugmentOp::kShearY: return "ShearY";
    case AugmentOp::kTranslateXRel: return "TranslateXRel";
    case AugmentOp::kTranslateYRel: return "TranslateYRel";
  }
  return "?";
}

void apply_augment_op(AugmentOp op, double magnitude, bool negate, bool increasing, PilResample resample,
                      uint8_t* rgb, int width, int height, std::vector<uint8_t>& scratch) {
  // timm's level functions, written as Python evaluates them: (level / 10) * range.
  const double level = magnitude / kLevelDenominator;
  const auto sign = [negate](double v) { return negate ? -v : v; };
  const auto enhance_factor = [&] { return increasing ? std::max(0.1, 1.0 + sign(level * 0.9)) : level * 1.8 + 0.1; };
  const size_t pixels = static_cast<size_t>(width) * static_cast<size_t>(height);
  const auto affine = [&](const double (&matrix)[6]) {
    scratch.assign(rgb, rgb + pixels * 3);
    pil_affine(scratch.data(), rgb, width, height, matrix, resample, kFill);
  };
  switch (op) {
    case AugmentOp::kAutoContrast: pil_autocontrast(rgb, pixels); return;
    case AugmentOp::kEqualize: pil_equalize(rgb, pixels); return;
    case AugmentOp::kInvert: pil_invert(rgb, pixels); return;
    case AugmentOp::kRotate:
      scratch.assign(rgb, rgb + pixels * 3);
      pil_rotate(scratch.data(), rgb, width, height, sign(level * 30.0), resample, kFill);
      return;
    case AugmentOp::kPosterize: {
      const int bits = static_cast<int>(level * 4.0);
      pil_posterize(rgb, pixels, increasing ? 4 - bits : bits);
      return;
    }
    case AugmentOp::kSolarize: {
      const int threshold = std::min(256, static_cast<int>(level * 256.0));
      pil_solarize(rgb, pixels, increasing ? 256 - threshold : threshold);
      return;
    }
    case AugmentOp::kSolarizeAdd: pil_solarize_add(rgb, pixels, std::min(128, static_cast<int>(level * 110.0)), 128); return;
    case AugmentOp::kColor: pil_enhance_color(rgb, pixels, enhance_factor(), scratch); return;
    case AugmentOp::kContrast: pil_enhance_contrast(rgb, pixels, enhance_factor(), scratch); return;
    case AugmentOp::kBrightness: pil_enhance_brightness(rgb, pixels, enhance_factor()); return;
    case AugmentOp::kSharpness: pil_enhance_sharpness(rgb, width, height, enhance_factor(), scratch); return;
    case AugmentOp::kShearX: affine({1, sign(level * 0.3), 0, 0, 1, 0}); return;
    case AugmentOp::kShearY: affine({1, 0, 0, sign(level * 0.3), 1, 0}); return;
    case AugmentOp::kTranslateXRel: affine({1, 0, sign(level * 0.45) * width, 0, 1, 0}); return;
    case AugmentOp::kTranslateYRel: affine({1, 0, 0, 0, 1, sign(level * 0.45) * height}); return;
  }
}

std::vector<AugmentStep> rand_augment_plan(const RandAugmentOptions& options, const SampleRandom& rng) {
  std::vector<AugmentStep> plan;
  for (int layer = 0; layer < options.layers; ++layer) {
    const uint32_t d = static_cast<uint32_t>(layer) * kDrawsPerLayer;
    const auto op = static_cast<AugmentOp>(std::min(kAugmentOps - 1, static_cast<int>(rng.uniform(d) * kAugmentOps)));
    if (options.prob < 1.0 && rng.uniform(d + 1) > options.prob) continue;  // timm: random() > prob skips
    double magnitude = options.magnitude;
    if (std::isinf(options.magnitude_std)) {
      magnitude = rng.uniform(d + 2) * options.magnitude;
    } else if (options.magnitude_std > 0) {
      const double u1 = rng.uniform(d + 2), u2 = rng.uniform(d + 3);
      magnitude += options.magnitude_std * std::sqrt(-2.0 * std::log1p(-u1)) * std::cos(2.0 * std::numbers::pi * u2);
    }
    // timm's random.choice((BILINEAR, BICUBIC)) for the geometric ops.
    const PilResample resample = rng.uniform(d + 5) < 0.5 ? PilResample::kBilinear : PilResample::kBicubic;
    plan.push_back({op, std::clamp(magnitude, 0.0, options.magnitude_max), rng.uniform(d + 4) > 0.5, resample});
  }
  return plan;
}

void rand_augment(const RandAugmentOptions& options, const SampleRandom& rng, uint8_t* rgb, int width, int height,
                  std::vector<uint8_t>& scratch) {
  for (const AugmentStep& step : rand_augment_plan(options, rng)) {
    apply_augment_op(step.op, step.magnitude, step.negate, options.increasing, step.resample, rgb, width, height,
                     scratch);
  }
}

}  // namespace pmpl::data
