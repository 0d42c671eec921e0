#include "data/random_erasing.h"

#include <algorithm>
#include <cmath>

#include "core/rng.h"
#include "engine/error.h"

namespace pmpl::data {

EraseFill parse_erase_fill(const std::string& mode) {
  if (mode == "pixel") return EraseFill::kPixel;
  if (mode == "rand") return EraseFill::kRand;
  if (mode == "const") return EraseFill::kConst;
  PMPL_CHECK(false, "--remode must be pixel, rand or const (timm's), got '{}'", mode);
  return EraseFill::kPixel;
}

int place_erase_boxes(const RandomErasingOptions& o, const SampleRandom& rng, int height, int width, EraseBox* out) {
  std::fill_n(out, o.max_count, EraseBox{});
  if (!o.enabled() || rng.uniform(0) > o.prob) return 0;  // timm: random() > prob skips
  const int count = o.max_count == 1 ? 1 : 1 + std::min(o.max_count - 1, static_cast<int>(rng.uniform(1) * o.max_count));
  const double area = static_cast<double>(height) * width;
  const double log_min = std::log(o.min_aspect), log_max = std::log(1.0 / o.min_aspect);
  constexpr int kTries = 10;
  int placed = 0;
  for (int box = 0; box < count; ++box) {
    for (int attempt = 0; attempt < kTries; ++attempt) {
      const uint32_t d = 2 + static_cast<uint32_t>(box * kTries + attempt) * 4;
      const double target = (o.min_area + (o.max_area - o.min_area) * rng.uniform(d)) * area / count;
      const double aspect = std::exp(log_min + (log_max - log_min) * rng.uniform(d + 1));
      // Python's int(round(x)): halves to even, as nearbyint in the default rounding mode.
      const int h = static_cast<int>(std::nearbyint(std::sqrt(target * aspect)));
      const int w = static_cast<int>(std::nearbyint(std::sqrt(target / aspect)));
      if (!(w < width && h < height)) continue;
      // randint(0, n) is inclusive: n + 1 places.
      const int top = std::min(height - h, static_cast<int>(rng.uniform(d + 2) * (height - h + 1)));
      const int left = std::min(width - w, static_cast<int>(rng.uniform(d + 3) * (width - w + 1)));
      out[placed++] = {top, left, h, w};
      break;
    }
  }
  return placed;
}

uint64_t erase_key(uint64_t seed, int64_t epoch, int64_t sample) {
  const Philox4 r = philox4x32(seed ^ kEraseStream, (static_cast<uint64_t>(epoch) << 40) ^ static_cast<uint64_t>(sample));
  return (static_cast<uint64_t>(r.v[1]) << 32) | r.v[0];
}

}  // namespace pmpl::data
