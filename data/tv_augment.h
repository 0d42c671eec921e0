// torchvision's (0.14) AutoAugment with its ImageNet policy and TrivialAugmentWide, on PIL images
// as its reference scripts run them (--auto-augment imagenet / ta_wide): nearest-neighbour
// geometry filled with black, the Pillow ops of data/pil_ops.h, torchvision's float32 magnitude
// tables (torch.linspace's values, written out: tests/test_augment.cpp holds them to torch's) and
// its _apply_op arithmetic (shear by atan, the inverse affine matrix, translate by whole pixels).
// The draws come from a counter-based stream keyed by (seed, epoch, sample).
#pragma once

#include <cstdint>
#include <vector>

#include "data/transform.h"

namespace pmpl::data {

enum class TvOp {
  kIdentity, kShearX, kShearY, kTranslateX, kTranslateY, kRotate, kBrightness, kColor, kContrast, kSharpness,
  kPosterize, kSolarize, kAutoContrast, kEqualize, kInvert,
};

// torchvision.transforms.autoaugment._apply_op on one HWC RGB image, in place.
void apply_tv_op(TvOp op, double magnitude, uint8_t* rgb, int width, int height, std::vector<uint8_t>& scratch);

// The ops each policy applies to one image, with their signed magnitudes, in order.
struct TvStep {
  TvOp op;
  double magnitude;
};
std::vector<TvStep> trivial_augment_wide_plan(const SampleRandom& rng);
std::vector<TvStep> auto_augment_imagenet_plan(const SampleRandom& rng);

// The magnitude tables, for the test that compares them with torch's.
struct TvTables {
  const float* values;
  int size;
};
TvTables trivial_augment_wide_table(TvOp op);
TvTables auto_augment_imagenet_table(TvOp op);

}  // namespace pmpl::data
