// Where each training or evaluation image is cut from, as torchvision computes it.
//  - train: RandomResizedCrop(S, scale=(0.08, 1), ratio=(3/4, 4/3)) then RandomHorizontalFlip:
//    up to 10 tries of a random area and log-uniform aspect ratio, else the central crop of the
//    clamped ratio; Python's round-half-even.
//  - eval: Resize(int(S / 0.875)) of the shorter side then CenterCrop(S), expressed as the source
//    box the S x S output covers (so only that part is decoded and resampled).
// Random numbers come from a counter-based stream keyed by (seed, epoch, sample index): a crop
// does not depend on which worker made it or when.
#pragma once

#include <cstdint>

#include "data/image_decode.h"

namespace pmpl::data {

struct SampleRandom {
  uint64_t key;
  uint64_t offset;
  SampleRandom(uint64_t seed, int64_t epoch, int64_t index);
  double uniform(uint32_t i) const;  // the i-th draw, in [0, 1)
};

struct CropParams {
  Box box;  // in source pixels
  bool flip = false;
};

CropParams random_resized_crop(int width, int height, const SampleRandom& rng, double min_scale = 0.08,
                               double max_scale = 1.0, double min_ratio = 3.0 / 4.0,
                               double max_ratio = 4.0 / 3.0);

CropParams eval_crop(int width, int height, int size, double crop_fraction = 0.875);

}  // namespace pmpl::data
