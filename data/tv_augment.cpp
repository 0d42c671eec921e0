#include "data/tv_augment.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <numbers>

#include "data/pil_ops.h"

namespace pmpl::data {
namespace {

constexpr uint8_t kBlack[3] = {0, 0, 0};  // torchvision's fill=None on a PIL image

// torch.linspace(...) in float32 as torchvision 0.14 builds its tables (TrivialAugmentWide: 31 bins;
// AutoAugment: 10, of which the ImageNet policy uses shear, rotate, the enhancements and solarize).
constexpr float kWideShear[] = {
    0.0f, 0.0329999998f, 0.0659999996f, 0.0989999995f, 0.131999999f, 0.164999992f, 0.197999999f, 0.231000006f,
    0.263999999f, 0.296999991f, 0.329999983f, 0.363000005f, 0.395999998f, 0.42899999f, 0.462000012f,
    0.495000005f, 0.527999997f, 0.56099999f, 0.593999982f, 0.627000034f, 0.660000026f, 0.693000019f,
    0.726000011f, 0.759000003f, 0.791999996f, 0.824999988f, 0.85800004f, 0.891000032f, 0.924000025f,
    0.957000017f, 0.99000001f};
constexpr float kWideTranslate[] = {
    0.0f, 1.06666672f, 2.13333344f, 3.20000029f, 4.26666689f, 5.33333349f, 6.40000057f, 7.46666718f,
    8.53333378f, 9.60000038f, 10.666667f, 11.7333336f, 12.8000011f, 13.8666668f, 14.9333344f, 16.0f,
    17.0666656f, 18.1333332f, 19.1999989f, 20.2666664f, 21.3333321f, 22.3999996f, 23.4666672f, 24.5333328f,
    25.6000004f, 26.666666f, 27.7333336f, 28.7999992f, 29.8666668f, 30.9333324f, 32.0f};
constexpr float kWideRotate[] = {
    0.0f, 4.5f, 9.0f, 13.5f, 18.0f, 22.5f, 27.0f, 31.5f, 36.0f, 40.5f, 45.0f, 49.5f, 54.0f, 58.5f, 63.0f,
    67.5f, 72.0f, 76.5f, 81.0f, 85.5f, 90.0f, 94.5f, 99.0f, 103.5f, 108.0f, 112.5f, 117.0f, 121.5f, 126.0f,
    130.5f, 135.0f};
constexpr float kWidePosterize[] = {8, 8, 8, 7, 7, 7, 7, 7, 6, 6, 6, 6, 6, 5, 5, 5,
                                    5, 5, 4, 4, 4, 4, 4, 3, 3, 3, 3, 3, 2, 2, 2};
constexpr float kWideSolarize[] = {
    255.0f, 246.5f, 238.0f, 229.5f, 221.0f, 212.5f, 204.0f, 195.5f, 187.0f, 178.5f, 170.0f, 161.5f, 153.0f,
    144.5f, 136.0f, 127.5f, 119.0f, 110.5f, 102.0f, 93.5f, 85.0f, 76.5f, 68.0f, 59.5f, 51.0f, 42.5f, 34.0f,
    25.5f, 17.0f, 8.5f, 0.0f};
constexpr float kImageNetShear[] = {
    0.0f, 0.0333333351f, 0.0666666701f, 0.100000009f, 0.13333334f, 0.166666672f, 0.200000003f, 0.233333349f,
    0.266666681f, 0.300000012f};
constexpr float kImageNetRotate[] = {
    0.0f, 3.33333325f, 6.66666651f, 10.0f, 13.333333f, 16.6666679f, 20.0f, 23.333334f, 26.666666f, 30.0f};
constexpr float kImageNetEnhance[] = {
    0.0f, 0.099999994f, 0.199999988f, 0.299999982f, 0.399999976f, 0.5f, 0.600000024f, 0.699999988f,
    0.799999952f, 0.899999976f};
constexpr float kImageNetPosterize[] = {8, 8, 7, 7, 6, 6, 5, 5, 4, 4};
constexpr float kImageNetSolarize[] = {
    255.0f, 226.666672f, 198.333328f, 170.0f, 141.666656f, 113.333336f, 85.0f, 56.6666679f, 28.333334f, 0.0f};

template <size_t N>
TvTables table(const float (&values)[N]) {
  return {values, static_cast<int>(N)};
}

// Whether torchvision's magnitude for the op may be negated (its augmentation space's "signed").
bool is_signed(TvOp op) {
  switch (op) {
    case TvOp::kShearX: case TvOp::kShearY: case TvOp::kTranslateX: case TvOp::kTranslateY: case TvOp::kRotate:
    case TvOp::kBrightness: case TvOp::kColor: case TvOp::kContrast: case TvOp::kSharpness: return true;
    default: return false;
  }
}

// torchvision.transforms.functional._get_inverse_affine_matrix (scale 1), as Python evaluates it.
void inverse_affine(double cx, double cy, double angle, double tx, double ty, double shear_x, double shear_y,
                    double (&m)[6]) {
  constexpr double kDegToRad = std::numbers::pi / 180.0;
  const double rot = angle * kDegToRad, sx = shear_x * kDegToRad, sy = shear_y * kDegToRad;
  const double a = std::cos(rot - sy) / std::cos(sy);
  const double b = -std::cos(rot - sy) * std::tan(sx) / std::cos(sy) - std::sin(rot);
  const double c = std::sin(rot - sy) / std::cos(sy);
  const double d = -std::sin(rot - sy) * std::tan(sx) / std::cos(sy) + std::cos(rot);
  m[0] = d, m[1] = -b, m[2] = 0.0, m[3] = -c, m[4] = a, m[5] = 0.0;
  m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty);
  m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty);
  m[2] += cx;
  m[5] += cy;
}

double degrees(double radians) { return radians * (180.0 / std::numbers::pi); }  // Python's math.degrees

}  // namespace

void apply_tv_op(TvOp op, double magnitude, uint8_t* rgb, int width, int height, std::vector<uint8_t>& scratch) {
  const size_t pixels = static_cast<size_t>(width) * static_cast<size_t>(height);
  const auto affine = [&](double cx, double cy, double tx, double ty, double shear_x, double shear_y) {
    double m[6];
    inverse_affine(cx, cy, 0.0, tx, ty, shear_x, shear_y, m);
    scratch.assign(rgb, rgb + pixels * 3);
    pil_affine(scratch.data(), rgb, width, height, m, PilResample::kNearest, kBlack);
  };
  switch (op) {
    case TvOp::kIdentity: return;
    // Shears about the top-left corner by atan(magnitude) degrees; translations by whole pixels
    // (int() truncates) about the centre.
    case TvOp::kShearX: affine(0, 0, 0, 0, degrees(std::atan(magnitude)), 0.0); return;
    case TvOp::kShearY: affine(0, 0, 0, 0, 0.0, degrees(std::atan(magnitude))); return;
    case TvOp::kTranslateX: affine(width * 0.5, height * 0.5, static_cast<int>(magnitude), 0, 0.0, 0.0); return;
    case TvOp::kTranslateY: affine(width * 0.5, height * 0.5, 0, static_cast<int>(magnitude), 0.0, 0.0); return;
    case TvOp::kRotate:
      scratch.assign(rgb, rgb + pixels * 3);
      pil_rotate(scratch.data(), rgb, width, height, magnitude, PilResample::kNearest, kBlack);
      return;
    case TvOp::kBrightness: pil_enhance_brightness(rgb, pixels, 1.0 + magnitude); return;
    case TvOp::kColor: pil_enhance_color(rgb, pixels, 1.0 + magnitude, scratch); return;
    case TvOp::kContrast: pil_enhance_contrast(rgb, pixels, 1.0 + magnitude, scratch); return;
    case TvOp::kSharpness: pil_enhance_sharpness(rgb, width, height, 1.0 + magnitude, scratch); return;
    case TvOp::kPosterize: pil_posterize(rgb, pixels, static_cast<int>(magnitude)); return;
    // ImageOps.solarize's `i < threshold` with a float threshold: i < ceil(threshold).
    case TvOp::kSolarize: pil_solarize(rgb, pixels, static_cast<int>(std::ceil(magnitude))); return;
    case TvOp::kAutoContrast: pil_autocontrast(rgb, pixels); return;
    case TvOp::kEqualize: pil_equalize(rgb, pixels); return;
    case TvOp::kInvert: pil_invert(rgb, pixels); return;
  }
}

TvTables trivial_augment_wide_table(TvOp op) {
  switch (op) {
    case TvOp::kShearX: case TvOp::kShearY: case TvOp::kBrightness: case TvOp::kColor: case TvOp::kContrast:
    case TvOp::kSharpness: return table(kWideShear);
    case TvOp::kTranslateX: case TvOp::kTranslateY: return table(kWideTranslate);
    case TvOp::kRotate: return table(kWideRotate);
    case TvOp::kPosterize: return table(kWidePosterize);
    case TvOp::kSolarize: return table(kWideSolarize);
    default: return {nullptr, 0};
  }
}

TvTables auto_augment_imagenet_table(TvOp op) {
  switch (op) {
    case TvOp::kShearX: case TvOp::kShearY: return table(kImageNetShear);
    case TvOp::kRotate: return table(kImageNetRotate);
    case TvOp::kBrightness: case TvOp::kColor: case TvOp::kContrast: case TvOp::kSharpness:
      return table(kImageNetEnhance);
    case TvOp::kPosterize: return table(kImageNetPosterize);
    case TvOp::kSolarize: return table(kImageNetSolarize);
    default: return {nullptr, 0};  // translations: not in the ImageNet policy
  }
}

std::vector<TvStep> trivial_augment_wide_plan(const SampleRandom& rng) {
  // The augmentation space's keys, in torchvision's order.
  constexpr TvOp kOps[] = {TvOp::kIdentity,   TvOp::kShearX,     TvOp::kShearY,     TvOp::kTranslateX,
                           TvOp::kTranslateY, TvOp::kRotate,     TvOp::kBrightness, TvOp::kColor,
                           TvOp::kContrast,   TvOp::kSharpness,  TvOp::kPosterize,  TvOp::kSolarize,
                           TvOp::kAutoContrast, TvOp::kEqualize};
  constexpr int kCount = static_cast<int>(std::size(kOps));
  const TvOp op = kOps[std::min(kCount - 1, static_cast<int>(rng.uniform(0) * kCount))];
  const TvTables t = trivial_augment_wide_table(op);
  double magnitude = 0.0;
  if (t.size > 0) magnitude = t.values[std::min(t.size - 1, static_cast<int>(rng.uniform(1) * t.size))];
  if (is_signed(op) && rng.uniform(2) < 0.5) magnitude = -magnitude;
  return {{op, magnitude}};
}

std::vector<TvStep> auto_augment_imagenet_plan(const SampleRandom& rng) {
  struct Half {
    TvOp op;
    double prob;
    int bin;  // -1: no magnitude
  };
  using O = TvOp;
  // torchvision's AutoAugmentPolicy.IMAGENET: 25 pairs of (op, chance, magnitude bin).
  static constexpr std::array<std::array<Half, 2>, 25> kPolicy = {{
      {{{O::kPosterize, 0.4, 8}, {O::kRotate, 0.6, 9}}},       {{{O::kSolarize, 0.6, 5}, {O::kAutoContrast, 0.6, -1}}},
      {{{O::kEqualize, 0.8, -1}, {O::kEqualize, 0.6, -1}}},    {{{O::kPosterize, 0.6, 7}, {O::kPosterize, 0.6, 6}}},
      {{{O::kEqualize, 0.4, -1}, {O::kSolarize, 0.2, 4}}},     {{{O::kEqualize, 0.4, -1}, {O::kRotate, 0.8, 8}}},
      {{{O::kSolarize, 0.6, 3}, {O::kEqualize, 0.6, -1}}},     {{{O::kPosterize, 0.8, 5}, {O::kEqualize, 1.0, -1}}},
      {{{O::kRotate, 0.2, 3}, {O::kSolarize, 0.6, 8}}},        {{{O::kEqualize, 0.6, -1}, {O::kPosterize, 0.4, 6}}},
      {{{O::kRotate, 0.8, 8}, {O::kColor, 0.4, 0}}},           {{{O::kRotate, 0.4, 9}, {O::kEqualize, 0.6, -1}}},
      {{{O::kEqualize, 0.0, -1}, {O::kEqualize, 0.8, -1}}},    {{{O::kInvert, 0.6, -1}, {O::kEqualize, 1.0, -1}}},
      {{{O::kColor, 0.6, 4}, {O::kContrast, 1.0, 8}}},         {{{O::kRotate, 0.8, 8}, {O::kColor, 1.0, 2}}},
      {{{O::kColor, 0.8, 8}, {O::kSolarize, 0.8, 7}}},         {{{O::kSharpness, 0.4, 7}, {O::kInvert, 0.6, -1}}},
      {{{O::kShearX, 0.6, 5}, {O::kEqualize, 1.0, -1}}},       {{{O::kColor, 0.4, 0}, {O::kEqualize, 0.6, -1}}},
      {{{O::kEqualize, 0.4, -1}, {O::kSolarize, 0.2, 4}}},     {{{O::kSolarize, 0.6, 5}, {O::kAutoContrast, 0.6, -1}}},
      {{{O::kInvert, 0.6, -1}, {O::kEqualize, 1.0, -1}}},      {{{O::kColor, 0.6, 4}, {O::kContrast, 1.0, 8}}},
      {{{O::kEqualize, 0.8, -1}, {O::kEqualize, 0.6, -1}}},
  }};
  const auto& pair = kPolicy[std::min<size_t>(kPolicy.size() - 1, static_cast<size_t>(rng.uniform(0) * kPolicy.size()))];
  std::vector<TvStep> plan;
  for (int i = 0; i < 2; ++i) {
    const Half& h = pair[static_cast<size_t>(i)];
    // torch.rand's [0, 1) draw against the chance: applied when draw <= chance.
    if (rng.uniform(1 + static_cast<uint32_t>(i)) > h.prob) continue;
    double magnitude = h.bin < 0 ? 0.0 : auto_augment_imagenet_table(h.op).values[h.bin];
    if (is_signed(h.op) && rng.uniform(3 + static_cast<uint32_t>(i)) < 0.5) magnitude = -magnitude;
    plan.push_back({h.op, magnitude});
  }
  return plan;
}

}  // namespace pmpl::data
