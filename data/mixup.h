// Mixup and CutMix on a training batch, as timm does them in its fast collate (timm.data.mixup,
// FastCollateMixup, mode "batch"): one draw per batch decides whether it is mixed (prob), then
// whether by cutmix or mixup (switch_prob, when both are on) and lambda ~ Beta(alpha, alpha); image i
// is mixed with image rows-1-i, its label weighted lambda and its partner's 1 - lambda.
//  - mixup: each uint8 value becomes rint(a * lambda + b * (1 - lambda)) in float32.
//  - cutmix: a box of about (1 - lambda) of the area, centred on a uniform pixel and clipped to the
//    image, is copied from the partner; lambda becomes 1 - box area / image area (timm's
//    correct_lam).
// The draws come from a counter-based stream keyed by (seed, epoch, batch, rank), so a batch is
// mixed the same way whichever worker made it, and a resumed run mixes as the first did.
//
// timm's other modes draw per image (elem: image i mixed with image B-1-i, each its own lambda and
// choice) or per pair (pair: images i and B-1-i mixed with each other, one lambda for both); their
// lambdas are float32 (timm's per-element array) and the loss weighs each image's labels by its
// own (train/mixed_loss.h).
#pragma once

#include <cstdint>
#include <string>

#include "data/transform.h"

namespace pmpl::data {

enum class MixMode { kBatch, kPair, kElem };

struct MixupOptions {
  double mixup_alpha = 0.0;   // Beta(alpha, alpha) of mixup; 0: no mixup
  double cutmix_alpha = 0.0;  // Beta(alpha, alpha) of cutmix; 0: no cutmix
  double prob = 1.0;          // chance that a batch is mixed at all
  double switch_prob = 0.5;   // with both on, the chance of cutmix rather than mixup
  MixMode mode = MixMode::kBatch;
  bool enabled() const { return mixup_alpha > 0 || cutmix_alpha > 0; }
};

// "batch", "pair" or "elem" (timm's --mixup-mode); anything else is a user error.
MixMode parse_mix_mode(const std::string& mode);

struct MixParams {
  double lambda = 1.0;  // the weight of each image's own label; 1: the batch is left as it is
  bool cutmix = false;
  int y0 = 0, y1 = 0, x0 = 0, x1 = 0;  // cutmix's box: rows [y0, y1), columns [x0, x1)
};

// A Beta(a, a) sample, a > 0, from the stream's draws `draw`, `draw` + 1, ... (advanced past those used).
double beta_sample(double a, const SampleRandom& rng, uint32_t& draw);

// What happens to one batch (or, with `float32_lambda`, one image or pair: timm rounds those
// lambdas to float32 before the box and the blend) of `height` x `width` images.
MixParams mix_params(const MixupOptions& options, const SampleRandom& rng, int height, int width,
                     bool float32_lambda = false);

// Mixes `rows` NHWC uint8 images (3 channels) in place; partner_labels[i] = labels[rows - 1 - i].
void mix_batch(const MixParams& params, uint8_t* images, int64_t rows, int height, int width,
               const int64_t* labels, int64_t* partner_labels);

// The pair and elem modes: image i of `images` (in place) mixed with image rows-1-i of
// `originals` (a copy of the batch as it was) by params[i]; `row_lambdas[i]` receives image i's
// lambda (float32, corrected for its box). Pair mode: params holds rows / 2 entries, pair i's
// applied to images i and rows-1-i alike (an odd batch's middle image stays as it is).
void mix_rows(MixMode mode, const MixParams* params, uint8_t* images, const uint8_t* originals, int64_t rows,
              int height, int width, const int64_t* labels, int64_t* partner_labels, float* row_lambdas);

}  // namespace pmpl::data
