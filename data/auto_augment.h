// The loader's per-image augmentation policy (`pmpl train --auto-augment`), by name:
//   rand-...   timm's RandAugment (data/rand_augment.h), e.g. rand-m9-mstd0.5;
//   ta_wide    torchvision's TrivialAugmentWide (data/tv_augment.h);
//   imagenet   torchvision's AutoAugment with its ImageNet policy (data/tv_augment.h).
// Each applies to a training image after its crop and flip, its draws keyed by (seed, epoch,
// sample) on a stream of its own.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/rand_augment.h"

namespace pmpl::data {

struct AutoAugmentOptions {
  enum class Kind { kNone, kRand, kTrivialWide, kImageNet };
  Kind kind = Kind::kNone;
  std::string config;        // as given
  RandAugmentOptions rand;   // kRand's settings
  bool enabled() const { return kind != Kind::kNone; }
};

// Empty: off. A string that names none of the policies is a user error.
AutoAugmentOptions parse_auto_augment(const std::string& config);

// The loader keys each image's draws by (seed ^ kAutoAugmentStream, epoch, sample index).
constexpr uint64_t kAutoAugmentStream = 0x72616e6461756775ull;  // "randaugu"

// The policy on one HWC RGB image, in place.
void auto_augment(const AutoAugmentOptions& options, const SampleRandom& rng, uint8_t* rgb, int width, int height,
                  std::vector<uint8_t>& scratch);

}  // namespace pmpl::data
