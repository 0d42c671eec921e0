// torchvision's ColorJitter on a PIL image, as timm's --color-jitter uses it: brightness, contrast,
// saturation and hue factors drawn uniformly from [max(0, 1 - b), 1 + b] (likewise c, s) and
// [-h, h], applied in a random order (torch.randperm(4)) through Pillow's ImageEnhance and
// torchvision's adjust_hue (data/pil_ops.h). A zero strength leaves its adjustment out. The draws
// come from a counter-based stream keyed by (seed, epoch, sample).
#pragma once

#include <cstdint>
#include <vector>

#include "data/transform.h"

namespace pmpl::data {

struct ColorJitterOptions {
  double brightness = 0.0, contrast = 0.0, saturation = 0.0, hue = 0.0;
  bool enabled() const { return brightness > 0 || contrast > 0 || saturation > 0 || hue > 0; }
};

// timm's --color-jitter values: one (brightness = contrast = saturation), three, or four (with hue);
// a bad count or range is a user error.
ColorJitterOptions parse_color_jitter(const std::vector<double>& values);

// What the transform does to one image: the adjustments in order, each with its factor.
enum class Jitter { kBrightness, kContrast, kSaturation, kHue };
struct JitterStep {
  Jitter kind;
  double factor;
};
std::vector<JitterStep> color_jitter_plan(const ColorJitterOptions& options, const SampleRandom& rng);

// The loader keys each image's draws by (seed ^ kColorJitterStream, epoch, sample index).
constexpr uint64_t kColorJitterStream = 0x6a6974746572ull;  // "jitter"

void color_jitter(const ColorJitterOptions& options, const SampleRandom& rng, uint8_t* rgb, int width, int height,
                  std::vector<uint8_t>& scratch);

}  // namespace pmpl::data
