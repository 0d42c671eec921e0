#include "data/auto_augment.h"

#include "data/tv_augment.h"
#include "engine/error.h"

namespace pmpl::data {

AutoAugmentOptions parse_auto_augment(const std::string& config) {
  AutoAugmentOptions o;
  o.config = config;
  if (config.empty()) return o;
  if (config == "ta_wide") {
    o.kind = AutoAugmentOptions::Kind::kTrivialWide;
  } else if (config == "imagenet") {
    o.kind = AutoAugmentOptions::Kind::kImageNet;
  } else if (config.rfind("rand", 0) == 0) {
    o.kind = AutoAugmentOptions::Kind::kRand;
    o.rand = parse_rand_augment(config);
  } else {
    PMPL_CHECK(false,
               "--auto-augment {}: use timm's RandAugment (rand-..., e.g. rand-m9-mstd0.5) or torchvision's ta_wide "
               "(TrivialAugmentWide) or imagenet (AutoAugment's ImageNet policy)",
               config);
  }
  return o;
}

void auto_augment(const AutoAugmentOptions& options, const SampleRandom& rng, uint8_t* rgb, int width, int height,
                  std::vector<uint8_t>& scratch) {
  switch (options.kind) {
    case AutoAugmentOptions::Kind::kNone: return;
    case AutoAugmentOptions::Kind::kRand: rand_augment(options.rand, rng, rgb, width, height, scratch); return;
    case AutoAugmentOptions::Kind::kTrivialWide:
      for (const TvStep& s : trivial_augment_wide_plan(rng)) apply_tv_op(s.op, s.magnitude, rgb, width, height, scratch);
      return;
    case AutoAugmentOptions::Kind::kImageNet:
      for (const TvStep& s : auto_augment_imagenet_plan(rng)) apply_tv_op(s.op, s.magnitude, rgb, width, height, scratch);
      return;
  }
}

}  // namespace pmpl::data
