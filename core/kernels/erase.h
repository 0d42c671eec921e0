// Random erasing's fill values (data/random_erasing.h), shared by the CPU op and the CUDA kernel so
// both write the same numbers: each a pure function of the image's key and the element.
#pragma once

#include <cstdint>

#include "core/hd.h"
#include "core/rng.h"

namespace pmpl::kernels {

// Boxes are int32 (top, left, height, width) rows, height 0 for none; fill as data::EraseFill.
inline constexpr int kEraseConst = 0, kEraseRand = 1, kErasePixel = 2;
inline constexpr uint64_t kEraseColourOffset = uint64_t{1} << 40;  // past any image's pixel draws

PMPL_HD float erase_value(int fill, uint64_t key, int box, int64_t pixel, int c) {
  if (fill == kEraseConst) return 0.0f;
  if (fill == kEraseRand) return philox_normal(key, kEraseColourOffset, static_cast<uint64_t>(box) * 3 + c);
  return philox_normal(key, 0, static_cast<uint64_t>(pixel) * 3 + static_cast<uint64_t>(c));
}

// The last of an image's `count` boxes that covers (y, x) (later boxes are written over earlier
// ones, as timm erases them in turn), or -1.
PMPL_HD int covering_box(const int32_t* boxes, int count, int y, int x) {
  int found = -1;
  for (int k = 0; k < count; ++k) {
    const int32_t* b = boxes + 4 * k;
    if (y >= b[0] && y < b[0] + b[2] && x >= b[1] && x < b[1] + b[3]) found = k;
  }
  return found;
}

}  // namespace pmpl::kernels
