// Random erasing as timm does it (timm.data.random_erasing.RandomErasing, train.py's --reprob,
// --remode, --recount): with chance `prob` an image gets 1 to `max_count` boxes (uniform count),
// each of area uniform in [min_area, max_area] x image / count and log-uniform aspect in
// [min_aspect, 1 / min_aspect], placed uniformly where it fits (10 tries, then that box is
// skipped), filled after normalisation: per-pixel N(0, 1) values (pixel), one N(0, 1) colour per
// box (rand) or zeros, the mean colour (const).
//
// The loader places the boxes (keyed by (seed, epoch, sample), as the crops are); the model's input
// step fills them (ops::erase_boxes_), each value a pure function of the image's key and the
// element, so CPU and GPU runs erase alike and a resumed run erases as the first did.
#pragma once

#include <cstdint>
#include <string>

#include "data/transform.h"

namespace pmpl::data {

enum class EraseFill : int { kConst = 0, kRand = 1, kPixel = 2 };

struct RandomErasingOptions {
  double prob = 0.0;  // 0: off
  EraseFill fill = EraseFill::kPixel;
  int max_count = 1;
  double min_area = 0.02, max_area = 1.0 / 3.0, min_aspect = 0.3;
  bool enabled() const { return prob > 0; }
};

// "pixel", "rand" or "const" (timm's names); anything else is a user error.
EraseFill parse_erase_fill(const std::string& mode);

// A box: rows [top, top + height), columns [left, left + width); height 0: none.
struct EraseBox {
  int32_t top = 0, left = 0, height = 0, width = 0;
};
static_assert(sizeof(EraseBox) == 4 * sizeof(int32_t), "the loader hands boxes over as i32 [.., 4] rows");

// The boxes of one `height` x `width` image into out[0 .. max_count) (unused ones zero); returns
// how many were placed.
int place_erase_boxes(const RandomErasingOptions& options, const SampleRandom& rng, int height, int width,
                      EraseBox* out);

// The loader keys each image's boxes by (seed ^ kEraseStream, epoch, sample) and its fill values by
// erase_key(seed, epoch, sample).
constexpr uint64_t kEraseStream = 0x6572617365ull;  // "erase"
uint64_t erase_key(uint64_t seed, int64_t epoch, int64_t sample);

}  // namespace pmpl::data
