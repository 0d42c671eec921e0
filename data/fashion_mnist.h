// Debian's dataset-fashion-mnist (gzip IDX files in /usr/share/datasets/fashion-mnist) turned
// into the ImageNet folder layout: OUT/train/<class>/<n>.jpg (60,000) and OUT/val/<class>/<n>.jpg
// (10,000), 28x28 grayscale JPEGs at quality 95, with readable class names; file names are the
// images' indices in the IDX files. Written under a temporary name and renamed at the end: an
// interrupted run never leaves a partial OUT.
#pragma once

#include <cstdint>
#include <string>

#include "data/clutter.h"

namespace pmpl::data {

inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

struct FashionMnistCounts {
  int64_t train = 0;
  int64_t val = 0;
};

// A development split: val/ is `holdout_per_class` images of each class drawn (seeded, the same
// on every machine) from the *training* file, train/ the rest; the official test set is not
// written, so nothing tuned on it can leak into a result measured on it later.
struct DevSplit {
  int64_t holdout_per_class = 0;  // 0: the official split
  uint64_t seed = 0;
};

// `limit` > 0 keeps only the first `limit` images of each split (for quick tests); `clutter` with a
// canvas writes each image translated and cluttered (data/clutter.h) instead.
FashionMnistCounts convert_fashion_mnist(const std::string& out, const std::string& source = kFashionMnistDir,
                                         int64_t limit = 0, const DevSplit& dev = {}, const Clutter& clutter = {});

}  // namespace pmpl::data
