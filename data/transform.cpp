#include "data/transform.h"

#include <algorithm>
#include <cmath>

#include "core/rng.h"

namespace pmpl::data {
namespace {

// Python's round(): half to even (the default floating-point rounding mode).
int py_round(double v) { return static_cast<int>(std::nearbyint(v)); }

// splitmix64: spreads (seed, epoch) over the Philox key space.
uint64_t mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace

SampleRandom::SampleRandom(uint64_t seed, int64_t epoch, int64_t index)
    : key(mix(seed ^ mix(static_cast<uint64_t>(epoch)))),
      offset(static_cast<uint64_t>(index) * 16) {}  // 16 counters = 64 draws per sample

double SampleRandom::uniform(uint32_t i) const {
  const Philox4 r = philox4x32(key, offset + i / 2);
  // 53 random bits from two lanes, as a double in [0, 1).
  const uint64_t bits = (static_cast<uint64_t>(r.v[(i % 2) * 2]) << 21) ^ (r.v[(i % 2) * 2 + 1] >> 11);
  return static_cast<double>(bits & ((1ull << 53) - 1)) * 0x1p-53;
}

CropParams random_resized_crop(int width, int height, const SampleRandom& rng, double min_scale,
                               double max_scale, double min_ratio, double max_ratio) {
  const double area = static_cast<double>(width) * height;
  const double log_min = std::log(min_ratio), log_max = std::log(max_ratio);
  CropParams p;
  p.flip = rng.uniform(0) < 0.5;
  for (uint32_t attempt = 0; attempt < 10; ++attempt) {
    const double target = area * (min_scale + (max_scale - min_scale) * rng.uniform(1 + 4 * attempt));
    const double ratio = std::exp(log_min + (log_max - log_min) * rng.uniform(2 + 4 * attempt));
    const int w = py_round(std::sqrt(target * ratio));
    const int h = py_round(std::sqrt(target / ratio));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const int top = std::min(height - h, static_cast<int>(rng.uniform(3 + 4 * attempt) * (height - h + 1)));
      const int left = std::min(width - w, static_cast<int>(rng.uniform(4 + 4 * attempt) * (width - w + 1)));
      p.box = {static_cast<double>(left), static_cast<double>(top), static_cast<double>(w), static_cast<double>(h)};
      return p;
    }
  }
  // torchvision's fallback: the central crop with the ratio clamped into range.
  const double in_ratio = static_cast<double>(width) / height;
  int w = width, h = height;
  if (in_ratio < min_ratio) {
    h = py_round(w / min_ratio);
  } else if (in_ratio > max_ratio) {
    w = py_round(h * max_ratio);
  }
  p.box = {static_cast<double>((width - w) / 2), static_cast<double>((height - h) / 2),
           static_cast<double>(w), static_cast<double>(h)};
  return p;
}

CropParams eval_crop(int width, int height, int size, double crop_fraction) {
  const int resized_short = static_cast<int>(size / crop_fraction);
  const bool wide = width >= height;
  const int short_side = wide ? height : width, long_side = wide ? width : height;
  const int resized_long = static_cast<int>(static_cast<double>(resized_short) * long_side / short_side);
  const int new_w = wide ? resized_long : resized_short, new_h = wide ? resized_short : resized_long;
  const int top = py_round((new_h - size) / 2.0), left = py_round((new_w - size) / 2.0);
  const double sx = static_cast<double>(width) / new_w, sy = static_cast<double>(height) / new_h;
  CropParams p;
  p.box = {left * sx, top * sy, size * sx, size * sy};
  return p;
}

}  // namespace pmpl::data
