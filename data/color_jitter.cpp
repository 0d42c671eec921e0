#include "data/color_jitter.h"

#include <algorithm>
#include <array>

#include "data/pil_ops.h"
#include "engine/error.h"

namespace pmpl::data {

ColorJitterOptions parse_color_jitter(const std::vector<double>& v) {
  if (v.empty()) return {};
  PMPL_CHECK(v.size() == 1 || v.size() == 3 || v.size() == 4,
             "--color-jitter takes 1 value (brightness, contrast and saturation), 3, or 4 (with hue), got {}", v.size());
  for (double x : v) PMPL_CHECK(x >= 0, "--color-jitter strengths must not be negative, got {}", x);
  ColorJitterOptions o;
  o.brightness = v[0];
  o.contrast = v.size() == 1 ? v[0] : v[1];
  o.saturation = v.size() == 1 ? v[0] : v[2];
  if (v.size() == 4) o.hue = v[3];
  PMPL_CHECK(o.hue <= 0.5, "--color-jitter's hue must be at most 0.5 (a half turn), got {}", o.hue);
  return o;
}

std::vector<JitterStep> color_jitter_plan(const ColorJitterOptions& o, const SampleRandom& rng) {
  // A random permutation of the four (Fisher-Yates on draws 0-2), then one factor each (3-6).
  std::array<Jitter, 4> order = {Jitter::kBrightness, Jitter::kContrast, Jitter::kSaturation, Jitter::kHue};
  for (int i = 3; i > 0; --i) {
    const int j = std::min(i, static_cast<int>(rng.uniform(static_cast<uint32_t>(3 - i)) * (i + 1)));
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
  }
  const auto factor = [&](double strength, uint32_t draw) {
    const double low = std::max(0.0, 1.0 - strength), high = 1.0 + strength;
    return low + (high - low) * rng.uniform(draw);
  };
  std::vector<JitterStep> plan;
  for (Jitter kind : order) {
    switch (kind) {
      case Jitter::kBrightness: if (o.brightness > 0) plan.push_back({kind, factor(o.brightness, 3)}); break;
      case Jitter::kContrast: if (o.contrast > 0) plan.push_back({kind, factor(o.contrast, 4)}); break;
      case Jitter::kSaturation: if (o.saturation > 0) plan.push_back({kind, factor(o.saturation, 5)}); break;
      case Jitter::kHue: if (o.hue > 0) plan.push_back({kind, -o.hue + 2.0 * o.hue * rng.uniform(6)}); break;
    }
  }
  return plan;
}

void color_jitter(const ColorJitterOptions& options, const SampleRandom& rng, uint8_t* rgb, int width, int height,
                  std::vector<uint8_t>& scratch) {
  const size_t pixels = static_cast<size_t>(width) * static_cast<size_t>(height);
  for (const JitterStep& step : color_jitter_plan(options, rng)) {
    switch (step.kind) {
      case Jitter::kBrightness: pil_enhance_brightness(rgb, pixels, step.factor); break;
      case Jitter::kContrast: pil_enhance_contrast(rgb, pixels, step.factor, scratch); break;
      case Jitter::kSaturation: pil_enhance_color(rgb, pixels, step.factor, scratch); break;
      case Jitter::kHue: pil_adjust_hue(rgb, pixels, step.factor); break;
    }
  }
}

}  // namespace pmpl::data
