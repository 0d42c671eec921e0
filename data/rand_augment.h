// RandAugment as timm does it (timm.data.auto_augment.rand_augment_transform), on each training
// image after its crop and flip: `layers` ops drawn uniformly (with replacement) from timm's 15,
// each applied with chance `prob` at a magnitude drawn from N(magnitude, magnitude_std) clamped to
// [0, magnitude_max] (uniform on [0, magnitude] when the std is infinite), on a 0-10 scale that
// timm's level functions turn into each op's argument. The ops are Pillow's (data/pil_ops.h), byte
// for byte; geometric ones fill with timm's mean colour (124, 116, 104) and resample bilinearly or
// bicubically at random, as timm's train.py default (--train-interpolation random) has them.
//
// The configuration is timm's string: "rand" then dash-separated keys, e.g. "rand-m9-mstd0.5":
// m (magnitude), n (layers), mstd, mmax, p (per-op chance), inc1 (timm's "increasing" op set, where a
// larger magnitude is always a stronger change). The draws come from a counter-based stream keyed
// by (seed, epoch, sample), as the crops' do.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/pil_ops.h"
#include "data/transform.h"

namespace pmpl::data {

struct RandAugmentOptions {
  std::string config;  // as given; empty: off
  int layers = 2;
  double magnitude = 10.0;  // timm's default when m is not given
  double magnitude_std = 0.0;
  double magnitude_max = 10.0;
  double prob = 0.5;
  bool increasing = false;
  bool enabled() const { return !config.empty(); }
};

// Parses timm's string; a bad one is a user error naming the part it could not read.
RandAugmentOptions parse_rand_augment(const std::string& config);

enum class AugmentOp {
  kAutoContrast, kEqualize, kInvert, kRotate, kPosterize, kSolarize, kSolarizeAdd, kColor, kContrast,
  kBrightness, kSharpness, kShearX, kShearY, kTranslateXRel, kTranslateYRel,
};
constexpr int kAugmentOps = 15;
const char* augment_op_name(AugmentOp op, bool increasing);

// One op at a magnitude (0-10 scale), as timm's level function and op compute it; `negate` stands
// for timm's coin flip on the ops with a signed argument (rotate, shear, translate, and the
// "increasing" enhancements); `resample` for the geometric ones. `scratch` is reused between calls.
void apply_augment_op(AugmentOp op, double magnitude, bool negate, bool increasing, PilResample resample,
                      uint8_t* rgb, int width, int height, std::vector<uint8_t>& scratch);

// What the policy does to one image: the ops it applies, in order (a skipped layer is absent).
struct AugmentStep {
  AugmentOp op;
  double magnitude;
  bool negate;
  PilResample resample;  // for the geometric ops: bilinear or bicubic, a fair coin
};
std::vector<AugmentStep> rand_augment_plan(const RandAugmentOptions& options, const SampleRandom& rng);

// The whole policy on one HWC RGB image, in place.
void rand_augment(const RandAugmentOptions& options, const SampleRandom& rng, uint8_t* rgb, int width, int height,
                  std::vector<uint8_t>& scratch);

}  // namespace pmpl::data
