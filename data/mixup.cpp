#include "data/mixup.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

#include "engine/error.h"

namespace pmpl::data {
namespace {

double normal_sample(const SampleRandom& rng, uint32_t& draw) {
  const double u1 = rng.uniform(draw++), u2 = rng.uniform(draw++);
  return std::sqrt(-2.0 * std::log1p(-u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

// log of a Gamma(k, 1) sample: Marsaglia and Tsang's method for k >= 1; for k < 1 a Gamma(k + 1)
// times U^(1/k), kept in logs because U^(1/k) underflows for the small k mixup uses (0.2).
double log_gamma_sample(double k, const SampleRandom& rng, uint32_t& draw) {
  if (k < 1.0) {
    const double log_u = std::log1p(-rng.uniform(draw++));
    return log_gamma_sample(k + 1.0, rng, draw) + log_u / k;
  }
  const double d = k - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
  for (;;) {
    const double x = normal_sample(rng, draw);
    const double t = 1.0 + c * x;
    if (t <= 0.0) continue;
    const double v = t * t * t;
    const double log_u = std::log1p(-rng.uniform(draw++));
    if (log_u < 0.5 * x * x + d - d * v + d * std::log(v)) return std::log(d * v);
  }
}

int uniform_int(const SampleRandom& rng, uint32_t& draw, int n) {
  return std::min(n - 1, static_cast<int>(rng.uniform(draw++) * n));
}

}  // namespace

double beta_sample(double a, const SampleRandom& rng, uint32_t& draw) {
  const double lx = log_gamma_sample(a, rng, draw), ly = log_gamma_sample(a, rng, draw);
  return 1.0 / (1.0 + std::exp(ly - lx));  // X / (X + Y)
}

MixMode parse_mix_mode(const std::string& mode) {
  if (mode == "batch") return MixMode::kBatch;
  if (mode == "pair") return MixMode::kPair;
  if (mode == "elem") return MixMode::kElem;
  PMPL_CHECK(false, "--mixup-mode must be batch, pair or elem (timm's), got '{}'", mode);
  return MixMode::kBatch;
}

MixParams mix_params(const MixupOptions& options, const SampleRandom& rng, int height, int width,
                     bool float32_lambda) {
  MixParams p;
  uint32_t draw = 0;
  if (!options.enabled() || rng.uniform(draw++) >= options.prob) return p;
  p.cutmix = options.mixup_alpha <= 0 ||
             (options.cutmix_alpha > 0 && rng.uniform(draw++) < options.switch_prob);
  p.lambda = beta_sample(p.cutmix ? options.cutmix_alpha : options.mixup_alpha, rng, draw);
  if (float32_lambda) p.lambda = static_cast<float>(p.lambda);
  if (!p.cutmix) return p;
  const double ratio = std::sqrt(1.0 - p.lambda);
  const int cut_h = static_cast<int>(height * ratio), cut_w = static_cast<int>(width * ratio);
  const int cy = uniform_int(rng, draw, height), cx = uniform_int(rng, draw, width);
  p.y0 = std::clamp(cy - cut_h / 2, 0, height);
  p.y1 = std::clamp(cy + cut_h / 2, 0, height);
  p.x0 = std::clamp(cx - cut_w / 2, 0, width);
  p.x1 = std::clamp(cx + cut_w / 2, 0, width);
  p.lambda = 1.0 - static_cast<double>(p.y1 - p.y0) * (p.x1 - p.x0) / (static_cast<double>(height) * width);
  return p;
}

void mix_batch(const MixParams& params, uint8_t* images, int64_t rows, int height, int width,
               const int64_t* labels, int64_t* partner_labels) {
  for (int64_t i = 0; i < rows; ++i) partner_labels[i] = labels[rows - 1 - i];
  if (params.lambda == 1.0) return;
  const size_t row_bytes = static_cast<size_t>(width) * 3, image_bytes = row_bytes * static_cast<size_t>(height);
  // timm multiplies float32 images by Python floats: lambda and 1 - lambda, each rounded to float32.
  const float own = static_cast<float>(params.lambda), other = static_cast<float>(1.0 - params.lambda);
  const auto blend = [own, other](uint8_t a, uint8_t b) {
    const float v = static_cast<float>(a) * own + static_cast<float>(b) * other;
    return static_cast<uint8_t>(std::clamp(std::nearbyint(v), 0.0f, 255.0f));
  };
  // Pairs (i, rows-1-i) are mixed together from both originals; a middle image mixes with itself.
  for (int64_t i = 0; i <= (rows - 1) / 2; ++i) {
    uint8_t* a = images + static_cast<size_t>(i) * image_bytes;
    uint8_t* b = images + static_cast<size_t>(rows - 1 - i) * image_bytes;
    if (params.cutmix) {
      if (a == b) continue;
      const size_t x0 = static_cast<size_t>(params.x0) * 3, n = static_cast<size_t>(params.x1 - params.x0) * 3;
      for (int y = params.y0; y < params.y1; ++y) {
        std::swap_ranges(a + y * row_bytes + x0, a + y * row_bytes + x0 + n, b + y * row_bytes + x0);
      }
      continue;
    }
    for (size_t k = 0; k < image_bytes; ++k) {
      const uint8_t va = a[k], vb = b[k];
      a[k] = blend(va, vb);
      b[k] = blend(vb, va);
    }
  }
}

namespace {

// Image `dst` becomes `own` mixed with `other` by p: the box pasted from `other`, or the float32
// blend rounded half to even; returns the lambda, corrected for the box.
double mix_image(const MixParams& p, uint8_t* dst, const uint8_t* own, const uint8_t* other, int height, int width) {
  const size_t row_bytes = static_cast<size_t>(width) * 3, bytes = row_bytes * static_cast<size_t>(height);
  std::copy_n(own, bytes, dst);
  if (p.lambda == 1.0) return 1.0;
  if (p.cutmix) {
    const size_t x0 = static_cast<size_t>(p.x0) * 3, n = static_cast<size_t>(p.x1 - p.x0) * 3;
    for (int y = p.y0; y < p.y1; ++y) std::copy_n(other + y * row_bytes + x0, n, dst + y * row_bytes + x0);
    return p.lambda;
  }
  const float a = static_cast<float>(p.lambda), b = static_cast<float>(1.0 - p.lambda);
  for (size_t k = 0; k < bytes; ++k) {
    const float v = static_cast<float>(own[k]) * a + static_cast<float>(other[k]) * b;
    dst[k] = static_cast<uint8_t>(std::clamp(std::nearbyint(v), 0.0f, 255.0f));
  }
  return p.lambda;
}

}  // namespace

void mix_rows(MixMode mode, const MixParams* params, uint8_t* images, const uint8_t* originals, int64_t rows,
              int height, int width, const int64_t* labels, int64_t* partner_labels, float* row_lambdas) {
  const size_t bytes = static_cast<size_t>(width) * 3 * static_cast<size_t>(height);
  for (int64_t i = 0; i < rows; ++i) partner_labels[i] = labels[rows - 1 - i];
  const auto image = [&](const uint8_t* base, int64_t i) { return base + static_cast<size_t>(i) * bytes; };
  if (mode == MixMode::kElem) {
    for (int64_t i = 0; i < rows; ++i) {
      row_lambdas[i] = static_cast<float>(
          mix_image(params[i], images + static_cast<size_t>(i) * bytes, image(originals, i), image(originals, rows - 1 - i),
                    height, width));
    }
    return;
  }
  // An odd batch's middle image would pair with itself: it stays as it is.
  if (rows % 2 == 1) row_lambdas[rows / 2] = 1.0f;
  for (int64_t i = 0; i < rows / 2; ++i) {
    const int64_t j = rows - 1 - i;
    const double lambda = mix_image(params[i], images + static_cast<size_t>(i) * bytes, image(originals, i),
                                    image(originals, j), height, width);
    mix_image(params[i], images + static_cast<size_t>(j) * bytes, image(originals, j), image(originals, i), height,
              width);
    row_lambdas[i] = row_lambdas[j] = static_cast<float>(lambda);
  }
}

}  // namespace pmpl::data
